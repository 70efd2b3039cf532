"""``mailfleet migrate``: re-declare a queue whose arguments differ from this version's,
keeping its messages. RabbitMQ cannot change a queue's arguments, so the messages move::

    1. {q}.migrating   declared as this version declares {q}, with {q}'s bindings
    2. {q}             unbound (what is published now lands in {q}.migrating)
    3. {q} ──► {q}.migrating   every message, confirm-then-ack
    4. {q}             deleted once empty, declared again with this version's arguments
    5. {q}.migrating ──► {q}   unbound, every message moved back, deleted once empty

Each move is confirm-then-ack: a message is acked in the queue it leaves only after the
broker confirmed its copy in the other, so a crash duplicates at most a message in flight
(the sent ledger absorbs a job sent twice) and never loses one. A run that stopped half-way
is finished by running it again: a ``{q}.migrating`` still there is moved back. Between
steps 1 and 2 a message published that instant is routed to both queues (a duplicate,
never a loss). The queue must have no consumers: stop the workers first.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import amqp
import amqp.exceptions
from kombu.connection import Connection

from mailfleet.producer.amqp_errors import CLOSE_ERRORS, broker_errors
from mailfleet.producer.ops.queue_check import QueueState, check_queue, queue_exists
from mailfleet.shared.errors import BrokerError
from mailfleet.shared.topology import QueueSpec

MIGRATING = ".migrating"


@dataclass(frozen=True)
class Migration:
    """What one queue's migration did: messages moved out of it and back into it."""

    queue: str
    moved_out: int
    moved_back: int

    def __str__(self) -> str:
        return f"{self.queue}: re-declared, {self.moved_back} messages kept"


def needs_migration(connection: Connection, queue: QueueSpec) -> bool:
    """Whether ``queue`` differs on the broker, or a stopped migration of it waits."""
    state = check_queue(connection, queue).state
    return state is QueueState.DIFFERS or queue_exists(connection, queue.name + MIGRATING)


def migrate_queue(connection: Connection, queue: QueueSpec, confirm_timeout: float) -> Migration:
    """Give ``queue`` this version's arguments, its messages kept (see the module doc)."""
    holding = QueueSpec(queue.name + MIGRATING, queue.arguments, queue.bindings)
    moved_out = 0
    state = check_queue(connection, queue).state
    if state is QueueState.DIFFERS:
        _refuse_if_consumed(connection, queue.name)
        _declare(connection, holding)
        _unbind(connection, queue)
        moved_out = _move(connection, queue.name, holding.name, confirm_timeout)
        _delete_empty(connection, queue.name)
        _declare(connection, queue)
    elif state is QueueState.MISSING:
        if not queue_exists(connection, holding.name):
            raise BrokerError(f"queue {queue.name} does not exist: run `mailfleet declare`")
        _declare(connection, queue)  # a run stopped between deleting and declaring it
    if not queue_exists(connection, holding.name):
        return Migration(queue.name, moved_out, 0)
    _unbind(connection, holding)
    moved_back = _move(connection, holding.name, queue.name, confirm_timeout)
    _delete_empty(connection, holding.name)
    return Migration(queue.name, moved_out, moved_back)


@contextlib.contextmanager
def _channel(connection: Connection, name: str) -> Iterator[Any]:
    with broker_errors(name):
        channel = connection.channel()
    try:
        with broker_errors(name):
            yield channel
    finally:
        with contextlib.suppress(*CLOSE_ERRORS):
            channel.close()


def _depth(connection: Connection, name: str) -> tuple[int, int]:
    """``(messages, consumers)`` of the queue ``name``."""
    with _channel(connection, name) as channel:
        _, messages, consumers = channel.queue_declare(name, passive=True)
    return int(messages), int(consumers)


def _refuse_if_consumed(connection: Connection, name: str) -> None:
    _, consumers = _depth(connection, name)
    if consumers:
        raise BrokerError(
            f"queue {name} has {consumers} consumer(s): stop the workers (and webhooks) first"
        )


def _declare(connection: Connection, queue: QueueSpec) -> None:
    with _channel(connection, queue.name) as channel:
        channel.queue_declare(
            queue.name, durable=True, auto_delete=False, arguments=queue.arguments
        )
        for binding in queue.bindings:
            channel.queue_bind(
                queue.name, binding.exchange, binding.routing_key, arguments=binding.arguments
            )


def _unbind(connection: Connection, queue: QueueSpec) -> None:
    with _channel(connection, queue.name) as channel:
        for binding in queue.bindings:
            channel.queue_unbind(
                queue.name, binding.exchange, binding.routing_key, arguments=binding.arguments
            )


def _delete_empty(connection: Connection, name: str) -> None:
    # Quorum queues refuse queue.delete with if-empty; nothing is bound to it and nobody
    # consumes it any more, so a count of 0 now stays 0.
    messages, _ = _depth(connection, name)
    if messages:
        raise BrokerError(f"queue {name} still holds {messages} messages; run migrate again")
    with _channel(connection, name) as channel:
        channel.queue_delete(name)


def _move(connection: Connection, source: str, target: str, confirm_timeout: float) -> int:
    """Move every message of ``source`` to ``target``, each acked only once its copy is
    confirmed; return how many moved."""
    moved = 0
    returned: list[int] = []
    with _channel(connection, source) as taking, _channel(connection, target) as giving:
        giving.confirm_select()
        giving.events["basic_return"].add(lambda *_: returned.append(1))
        while (message := taking.basic_get(source, no_ack=False)) is not None:
            copy = amqp.Message(message.body, **message.properties)
            try:
                giving.basic_publish_confirm(
                    copy,
                    exchange="",
                    routing_key=target,
                    mandatory=True,
                    confirm_timeout=confirm_timeout,
                )
            except amqp.exceptions.MessageNacked as exc:
                raise BrokerError(f"queue {target} refused a message: {source} keeps it") from exc
            if returned:
                raise BrokerError(f"queue {target} is gone: {source} keeps its messages")
            taking.basic_ack(message.delivery_tag)
            moved += 1
    return moved
