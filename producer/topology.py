"""Declaring (and, for tests and the demo, deleting) a namespace's topology with kombu."""

from __future__ import annotations

import amqp.exceptions
from kombu.connection import Connection

from mailfleet.shared.errors import BrokerError
from mailfleet.shared.settings import Settings
from mailfleet.shared.topology import Topology, build_topology


def topology_of(settings: Settings) -> Topology:
    return build_topology(settings.names, settings.retry_delays, settings.delivery_limit)


def declare(connection: Connection, topology: Topology) -> None:
    """Declare every exchange, queue and binding; idempotent."""
    channel = connection.channel()
    try:
        for exchange in topology.exchanges:
            channel.exchange_declare(exchange.name, exchange.type, durable=True, auto_delete=False)
        for queue in topology.queues:
            try:
                channel.queue_declare(
                    queue.name, durable=True, auto_delete=False, arguments=queue.arguments
                )
            except amqp.exceptions.PreconditionFailed as exc:
                raise BrokerError(
                    f"queue {queue.name} exists with other arguments ({exc.reply_text}); "
                    "delete it or choose another MAILFLEET_NAMESPACE"
                ) from exc
            except amqp.exceptions.AMQPError as exc:  # e.g. access refused
                raise BrokerError(f"declaring queue {queue.name} failed: {exc}") from exc
            for binding in queue.bindings:
                channel.queue_bind(
                    queue.name, binding.exchange, binding.routing_key, arguments=binding.arguments
                )
    finally:
        channel.close()


def delete(connection: Connection, topology: Topology) -> None:
    """Remove every queue and exchange of the namespace, messages included."""
    channel = connection.channel()
    try:
        for queue in topology.queues:
            channel.queue_delete(queue.name)
        for exchange in topology.exchanges:
            channel.exchange_delete(exchange.name)
    finally:
        channel.close()


def queue_depths(connection: Connection, topology: Topology) -> dict[str, tuple[int, int]]:
    """``{queue: (messages ready, consumers)}`` by passive declare (no management plugin needed)."""
    depths = {}
    channel = connection.channel()
    try:
        for queue in topology.queues:
            _, messages, consumers = channel.queue_declare(queue.name, passive=True)
            depths[queue.name] = (messages, consumers)
    finally:
        channel.close()
    return depths
