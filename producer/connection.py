"""Opening kombu connections, with broker errors translated to ours at the boundary."""

from __future__ import annotations

from kombu.connection import Connection

from mailfleet.producer.amqp_errors import broker_errors
from mailfleet.producer.blocking import watch_blocked
from mailfleet.shared.errors import BrokerError
from mailfleet.shared.settings import Settings, bad_amqp_url


def open_connection(settings: Settings, timeout: float = 5.0, retries: int = 3) -> Connection:
    """A live connection to ``MAILFLEET_AMQP_URL``, or a :class:`BrokerError` naming it
    (:class:`BrokerUnavailable` when it cannot be reached). With several URLs, kombu tries
    them in this process's order (shared/amqp_urls.py), each retry on the next one."""
    urls = settings.amqp_urls
    url = ",".join(urls)
    try:
        # No heartbeats (a publisher idles between calls), so reads and writes need their
        # own timeouts, or a silently cut connection blocks a command forever.
        connection = Connection(
            urls,
            failover_strategy="round-robin",
            connect_timeout=timeout,
            heartbeat=0,
            transport_options={"read_timeout": 15, "write_timeout": 15},
        )
    except ValueError:  # kombu's message can quote part of the password
        raise bad_amqp_url(url) from None
    try:
        with broker_errors(url=url):
            connection.ensure_connection(
                max_retries=retries * len(urls), interval_start=0.2, interval_step=0.5
            )
    except BrokerError:
        connection.release()
        raise
    watch_blocked(connection)
    return connection
