"""``mailfleet declare --check``: which queues on the broker differ from what this version
declares, without changing any.

AMQP cannot read a queue's arguments back (only the management plugin can, and it may be
off), so each queue is probed: a passive declare tells whether it exists, then a declare
with this version's arguments, on a channel of its own, either succeeds (RabbitMQ found
them equivalent, so nothing changes) or is refused with PRECONDITION_FAILED naming the
first argument that differs. RabbitMQ compares every argument mailfleet sets (queue type,
TTL, dead-letter exchange, key and strategy, overflow, delivery limit).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import amqp.exceptions
from kombu.connection import Connection

from mailfleet.producer.amqp_errors import CLOSE_ERRORS, broker_errors
from mailfleet.shared.topology import QueueSpec, Topology


class QueueState(StrEnum):
    MATCHES = "matches"
    DIFFERS = "differs"
    MISSING = "missing"


@dataclass(frozen=True)
class QueueCheck:
    queue: str
    state: QueueState
    detail: str = ""  # for DIFFERS: RabbitMQ's words on the first argument that differs

    def __str__(self) -> str:
        return f"{self.queue}: {self.state}" + (f" ({self.detail})" if self.detail else "")


def check_queue(connection: Connection, queue: QueueSpec) -> QueueCheck:
    """How ``queue`` on the broker compares with ``queue`` as declared here."""
    if not queue_exists(connection, queue.name):
        return QueueCheck(queue.name, QueueState.MISSING)
    channel = connection.channel()
    try:
        with broker_errors(queue.name):
            try:
                channel.queue_declare(
                    queue.name, durable=True, auto_delete=False, arguments=queue.arguments
                )
            except amqp.exceptions.PreconditionFailed as exc:
                detail = str(exc.reply_text).removeprefix("PRECONDITION_FAILED - ")
                return QueueCheck(queue.name, QueueState.DIFFERS, detail)
    finally:
        _close(channel)
    return QueueCheck(queue.name, QueueState.MATCHES)


def check_topology(connection: Connection, *topologies: Topology) -> list[QueueCheck]:
    """Every queue of ``topologies``, checked in order."""
    return [check_queue(connection, queue) for topology in topologies for queue in topology.queues]


def queue_exists(connection: Connection, name: str) -> bool:
    channel = connection.channel()
    try:
        with broker_errors(name):
            try:
                channel.queue_declare(name, passive=True)
            except amqp.exceptions.NotFound:
                return False
    finally:
        _close(channel)
    return True


def _close(channel: Any) -> None:
    """Close a probe channel; the broker has already closed one it refused."""
    with contextlib.suppress(*CLOSE_ERRORS):
        channel.close()
