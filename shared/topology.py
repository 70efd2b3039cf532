"""The broker topology as plain data; each side declares it with its own client library.

::

    producer ──► {ns} (topic, key = lane) ──► {ns}.transactional / {ns}.bulk   (quorum)
                                                 │ delivery limit / dead-letter
    worker retry ──► {ns}.delay (headers, tier) ──► {ns}.delay.<tier> (TTL) ──► {ns}
    worker dead-letter ──► {ns}.dlx (fanout) ──► {ns}.dead    (kept until an operator acts)

Every queue is a durable quorum queue with at-least-once dead-lettering, so a message
expiring from a delay tier or exceeding the delivery limit is never dropped on the way.
On a cluster each is created with ``x-quorum-initial-group-size`` replicas
(``MAILFLEET_QUORUM_SIZE``); RabbitMQ caps that at the number of nodes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mailfleet.shared.durations import format_duration
from mailfleet.shared.job import Lane
from mailfleet.shared.names import TIER, Names


@dataclass(frozen=True)
class ExchangeSpec:
    name: str
    type: str


@dataclass(frozen=True)
class BindingSpec:
    exchange: str
    routing_key: str = ""
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class QueueSpec:
    name: str
    arguments: dict[str, Any]
    bindings: tuple[BindingSpec, ...]


@dataclass(frozen=True)
class Topology:
    exchanges: tuple[ExchangeSpec, ...]
    queues: tuple[QueueSpec, ...]


GROUP_SIZE = "x-quorum-initial-group-size"


def group_size_differs(reply_text: str) -> bool:
    """Whether the broker refused a declare only because the queue exists with another
    (or no) initial group size: the argument only counts when a queue is created, so the
    existing queue is the one to use, as it is."""
    return "inequivalent arg" in reply_text and f"'{GROUP_SIZE}'" in reply_text


def quorum_arguments(dead_letter_exchange: str, **extra: Any) -> dict[str, Any]:
    """A durable quorum queue's arguments, dead-lettering at least once to the exchange."""
    return {
        "x-queue-type": "quorum",
        "x-dead-letter-exchange": dead_letter_exchange,
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
        **extra,
    }


def tier_name(delay_seconds: float) -> str:
    return format_duration(delay_seconds)


def delay_tiers(
    queue_name: Callable[[float], str], delay_exchange: str, back_to: str, delays: list[float]
) -> tuple[QueueSpec, ...]:
    """One queue per delay: bound on the delay exchange by its ``x-mailfleet-tier`` header, it
    holds a message for its TTL, then dead-letters it back to ``back_to``."""
    return tuple(
        QueueSpec(
            queue_name(delay),
            quorum_arguments(back_to, **{"x-message-ttl": int(delay * 1000)}),
            (BindingSpec(delay_exchange, "", {"x-match": "all-with-x", TIER: tier_name(delay)}),),
        )
        for delay in sorted(set(delays))
    )


def build_topology(
    names: Names, retry_delays: list[float], delivery_limit: int, quorum_size: int | None = None
) -> Topology:
    """Exchanges and queues for one namespace; declaring them twice changes nothing.
    ``quorum_size``: the replicas each queue is created with (None: RabbitMQ's default)."""
    exchanges = (
        ExchangeSpec(names.exchange, "topic"),
        ExchangeSpec(names.delay_exchange, "headers"),
        ExchangeSpec(names.dead_letter_exchange, "fanout"),
        ExchangeSpec(names.events_exchange, "topic"),
    )
    lanes = tuple(
        QueueSpec(
            names.lane_queue(lane),
            quorum_arguments(names.dead_letter_exchange, **{"x-delivery-limit": delivery_limit}),
            (BindingSpec(names.exchange, lane.value),),
        )
        for lane in Lane
    )
    delays = delay_tiers(names.delay_queue, names.delay_exchange, names.exchange, retry_delays)
    dead = QueueSpec(
        names.dead_queue,
        {"x-queue-type": "quorum"},
        (BindingSpec(names.dead_letter_exchange),),
    )
    queues = (*lanes, *delays, dead)
    if quorum_size is not None:
        queues = tuple(
            QueueSpec(queue.name, {**queue.arguments, GROUP_SIZE: quorum_size}, queue.bindings)
            for queue in queues
        )
    return Topology(exchanges=exchanges, queues=queues)
