"""pika plumbing shared by the consumer and the republisher: connection parameters, the
topology declared with pika, and pika's errors translated to ours (:func:`broker_errors`,
the worker side's one translator)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pika
import pika.exceptions
from pika.exchange_type import ExchangeType

from mailfleet.shared.errors import BrokerError, BrokerUnavailable, PublishNacked, Unroutable
from mailfleet.shared.settings import Settings, bad_amqp_url, unreachable_broker
from mailfleet.shared.topology import Topology, group_size_differs

# What a lost or refused connection raises in pika.
CONNECTION_ERRORS: tuple[type[Exception], ...] = (
    pika.exceptions.AMQPConnectionError,
    pika.exceptions.ConnectionClosed,
    pika.exceptions.StreamLostError,
    pika.exceptions.ChannelWrongStateError,
    pika.exceptions.ChannelClosed,
    ConnectionError,
    OSError,
)


@contextlib.contextmanager
def broker_errors(
    failed: str, *, declaring: bool = False, exchange: str = "", message_id: str = ""
) -> Iterator[None]:
    """Run a block of pika calls; raise only mailfleet errors. A lost or refused connection
    raises :class:`BrokerUnavailable` as ``failed: <pika's error>``; ``declaring``: the calls
    declare the topology, so a channel the broker closes gets its own advice; a publish of
    ``message_id`` to ``exchange`` that is returned or nacked raises what the producer would."""
    try:
        yield
    except pika.exceptions.UnroutableError as exc:
        raise Unroutable(f"no queue bound at {exchange!r}", [message_id]) from exc
    except pika.exceptions.NackError as exc:
        raise PublishNacked("the broker refused the message", [message_id]) from exc
    except pika.exceptions.ChannelClosedByBroker as exc:
        if not declaring:
            raise BrokerUnavailable(f"{failed}: {exc!r}") from exc
        raise BrokerError(
            f"{failed} ({exc.reply_text}); a queue may exist with other arguments: after an "
            "upgrade `mailfleet migrate` re-declares it, else choose another MAILFLEET_NAMESPACE"
        ) from exc
    except CONNECTION_ERRORS as exc:
        raise BrokerUnavailable(f"{failed}: {exc!r}") from exc


def connection_parameters(
    settings: Settings,
    heartbeat: int | None = None,
    blocked_timeout: float | None = None,
    url: str | None = None,
) -> pika.URLParameters:
    """Parameters for ``url`` (default: the first of this process's MAILFLEET_AMQP_URL)."""
    url = settings.amqp_urls[0] if url is None else url
    try:
        parameters = pika.URLParameters(url)
    except ValueError:  # pika's message can quote part of the password
        raise bad_amqp_url(url) from None
    parameters.connection_attempts = 1
    parameters.socket_timeout = 5
    # A broker alarm blocks publishing: pika then closes the connection after this long
    # (ConnectionBlockedTimeout) rather than waiting for a confirm forever.
    parameters.blocked_connection_timeout = blocked_timeout or settings.publish_timeout
    # A connection cut silently (NAT, load balancer) must fail in seconds, not in TCP's
    # quarter of an hour: the republisher's connection idles without heartbeats.
    parameters.tcp_options = {
        "TCP_KEEPIDLE": 30,
        "TCP_KEEPINTVL": 10,
        "TCP_KEEPCNT": 3,
        "TCP_USER_TIMEOUT": 30_000,
    }
    if heartbeat is not None:
        parameters.heartbeat = heartbeat
    return parameters


def connect(
    settings: Settings, heartbeat: int | None = None, blocked_timeout: float | None = None
) -> pika.BlockingConnection:
    """A connection to the first node that answers, in this process's order."""
    urls = settings.amqp_urls
    parameters = [connection_parameters(settings, heartbeat, blocked_timeout, url) for url in urls]
    with broker_errors(unreachable_broker(",".join(urls))):
        return pika.BlockingConnection(parameters)


def declare(connection: pika.BlockingConnection, topology: Topology) -> None:
    """Declare the namespace's exchanges, queues and bindings (idempotent)."""
    with broker_errors("declaring the topology failed", declaring=True):
        _declare(connection, topology)


def _declare(connection: pika.BlockingConnection, topology: Topology) -> None:
    channel = connection.channel()
    try:
        for exchange in topology.exchanges:
            channel.exchange_declare(exchange.name, ExchangeType(exchange.type), durable=True)
        for queue in topology.queues:
            try:
                channel.queue_declare(queue.name, durable=True, arguments=queue.arguments)
            except pika.exceptions.ChannelClosedByBroker as exc:
                if not group_size_differs(exc.reply_text):
                    raise
                channel = connection.channel()  # the queue exists: use it as it is
                channel.queue_declare(queue.name, passive=True)
            for binding in queue.bindings:
                channel.queue_bind(
                    queue.name, binding.exchange, binding.routing_key, arguments=binding.arguments
                )
    finally:
        if channel.is_open:
            channel.close()


def coalesce_output(connection: pika.BlockingConnection | None) -> None:
    """Join the frames waiting to go out on ``connection`` into one write. pika sends every
    frame (a publish is three) with a send() of its own, and on a small VM one loopback
    send() costs about 100 µs of CPU: many frames at once cost more in syscalls than in
    everything else. Call it from the connection's own thread, after queueing the frames."""
    impl: Any = getattr(connection, "_impl", None)
    buffers = getattr(getattr(impl, "_transport", None), "_tx_buffers", None)
    if buffers is not None and len(buffers) > 1:
        joined = b"".join(buffers)
        buffers.clear()
        buffers.append(joined)
