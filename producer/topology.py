"""Declaring (and, for tests and the demo, deleting) a namespace's topology with kombu."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import amqp.exceptions
from kombu.connection import Connection

from mailfleet.producer.amqp_errors import broker_errors
from mailfleet.shared.settings import Settings
from mailfleet.shared.topology import QueueSpec, Topology, build_topology, group_size_differs


def topology_of(settings: Settings) -> Topology:
    return build_topology(
        settings.names, settings.retry_delays, settings.delivery_limit, settings.quorum_size
    )


@contextlib.contextmanager
def _channel(connection: Connection) -> Iterator[Any]:
    """A channel for one batch of topology calls, closed after them."""
    with broker_errors("the topology"):
        channel = connection.channel()
    try:
        yield channel
    finally:
        with broker_errors("the topology"):
            channel.close()


def declare(connection: Connection, topology: Topology) -> None:
    """Declare every exchange, queue and binding; idempotent."""
    with _channel(connection) as channel:
        for exchange in topology.exchanges:
            with broker_errors(exchange.name, kind="exchange", declaring=True):
                channel.exchange_declare(
                    exchange.name, exchange.type, durable=True, auto_delete=False
                )
        for queue in topology.queues:
            with broker_errors(queue.name, declaring=True):
                _declare_queue(connection, channel, queue)
                for binding in queue.bindings:
                    channel.queue_bind(
                        queue.name,
                        binding.exchange,
                        binding.routing_key,
                        arguments=binding.arguments,
                    )


def _declare_queue(connection: Connection, channel: Any, queue: QueueSpec) -> None:
    """Declare ``queue``; one created with another initial group size is used as it is."""
    try:
        channel.queue_declare(
            queue.name, durable=True, auto_delete=False, arguments=queue.arguments
        )
    except amqp.exceptions.PreconditionFailed as exc:
        if not group_size_differs(exc.reply_text):
            raise
        channel.queue_declare(queue.name, passive=True)  # py-amqp reopened the channel


def delete(connection: Connection, topology: Topology) -> None:
    """Remove every queue and exchange of the namespace, messages included."""
    with _channel(connection) as channel:
        for queue in topology.queues:
            with broker_errors(queue.name):
                channel.queue_delete(queue.name)
        for exchange in topology.exchanges:
            with broker_errors(exchange.name, kind="exchange"):
                channel.exchange_delete(exchange.name)


def queue_depths(connection: Connection, topology: Topology) -> dict[str, tuple[int, int]]:
    """``{queue: (messages ready, consumers)}`` by passive declare (no management plugin needed)."""
    depths = {}
    with _channel(connection) as channel:
        for queue in topology.queues:
            with broker_errors(queue.name):
                _, messages, consumers = channel.queue_declare(queue.name, passive=True)
            depths[queue.name] = (messages, consumers)
    return depths
