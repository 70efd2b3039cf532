"""Opening kombu connections, with broker errors translated to ours at the boundary."""

from __future__ import annotations

import socket

import amqp.exceptions
import kombu.exceptions
from kombu.connection import Connection

from mailfleet.shared.errors import BrokerUnavailable
from mailfleet.shared.settings import Settings, bad_amqp_url, unreachable_broker

# What a dead or unreachable connection raises, from kombu, py-amqp or the socket.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    kombu.exceptions.OperationalError,
    amqp.exceptions.RecoverableConnectionError,
    amqp.exceptions.ConnectionForced,
    ConnectionError,
    socket.timeout,
    OSError,
)


def open_connection(settings: Settings, timeout: float = 5.0, retries: int = 3) -> Connection:
    """A live connection to ``MAILFLEET_AMQP_URL``, or :class:`BrokerUnavailable` naming it."""
    url = settings.amqp_url.get_secret_value()
    try:
        # No heartbeats (a publisher idles between calls), so reads and writes need their
        # own timeouts, or a silently cut connection blocks a command forever.
        connection = Connection(
            url,
            connect_timeout=timeout,
            heartbeat=0,
            transport_options={"read_timeout": 15, "write_timeout": 15},
        )
    except ValueError:  # kombu's message can quote part of the password
        raise bad_amqp_url(url) from None
    try:
        connection.ensure_connection(max_retries=retries, interval_start=0.2, interval_step=0.5)
    except CONNECTION_ERRORS as exc:
        connection.release()
        raise BrokerUnavailable(f"{unreachable_broker(url)}: {exc}") from exc
    return connection
