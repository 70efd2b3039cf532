"""pika plumbing shared by the consumer and the republisher: connection parameters, the
topology declared with pika, and pika's errors translated to ours."""

from __future__ import annotations

import pika
import pika.exceptions
from pika.exchange_type import ExchangeType

from mailfleet.shared.errors import BrokerError, BrokerUnavailable
from mailfleet.shared.settings import Settings, bad_amqp_url, unreachable_broker
from mailfleet.shared.topology import Topology

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


def connection_parameters(settings: Settings, heartbeat: int | None = None) -> pika.URLParameters:
    url = settings.amqp_url.get_secret_value()
    try:
        parameters = pika.URLParameters(url)
    except ValueError:  # pika's message can quote part of the password
        raise bad_amqp_url(url) from None
    parameters.connection_attempts = 1
    parameters.socket_timeout = 5
    parameters.blocked_connection_timeout = 30
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


def connect(settings: Settings, heartbeat: int | None = None) -> pika.BlockingConnection:
    try:
        return pika.BlockingConnection(connection_parameters(settings, heartbeat))
    except CONNECTION_ERRORS as exc:
        url = settings.amqp_url.get_secret_value()
        raise BrokerUnavailable(f"{unreachable_broker(url)}: {exc!r}") from exc


def declare(connection: pika.BlockingConnection, topology: Topology) -> None:
    """Declare the namespace's exchanges, queues and bindings (idempotent)."""
    channel = connection.channel()
    try:
        for exchange in topology.exchanges:
            channel.exchange_declare(exchange.name, ExchangeType(exchange.type), durable=True)
        for queue in topology.queues:
            channel.queue_declare(queue.name, durable=True, arguments=queue.arguments)
            for binding in queue.bindings:
                channel.queue_bind(
                    queue.name, binding.exchange, binding.routing_key, arguments=binding.arguments
                )
    except pika.exceptions.ChannelClosedByBroker as exc:
        raise BrokerError(
            f"declaring the topology failed ({exc.reply_text}); a queue may exist with other "
            "arguments: delete it or choose another MAILFLEET_NAMESPACE"
        ) from exc
    finally:
        if channel.is_open:
            channel.close()
