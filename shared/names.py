"""Every RabbitMQ and Redis name mailfleet uses, derived from one namespace.

Two deployments (or two test runs) with different namespaces share a broker and a Redis
without touching each other.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailfleet.shared.durations import format_duration
from mailfleet.shared.job import Lane

PERSISTENT = 2  # AMQP delivery mode of a message that survives a broker restart

# Message headers (documented in the README's "Broker topology").
ATTEMPT = "x-mailfleet-attempt"
REASON = "x-mailfleet-reason"
ERROR = "x-mailfleet-error"
ATTEMPTS = "x-mailfleet-attempts"
FAILED_AT = "x-mailfleet-failed-at"
LANE = "x-mailfleet-lane"
TIER = "x-mailfleet-tier"
RECIPIENTS = "x-mailfleet-recipients"  # the recipients still to be tried, when fewer than all
REPLAYS = "x-mailfleet-replays"  # how often the job was replayed from the dead-letter queue


@dataclass(frozen=True)
class Names:
    """Names under a namespace: ``Names("mf").lane_queue(Lane.BULK)`` is ``mf.bulk``."""

    namespace: str

    @property
    def exchange(self) -> str:
        """Topic exchange producers publish to; routing key = lane."""
        return self.namespace

    def lane_queue(self, lane: Lane) -> str:
        return f"{self.namespace}.{lane.value}"

    @property
    def delay_exchange(self) -> str:
        """Headers exchange routing a retry to its tier queue by the ``x-mailfleet-tier`` header."""
        return f"{self.namespace}.delay"

    def delay_queue(self, delay_seconds: float) -> str:
        return f"{self.namespace}.delay.{format_duration(delay_seconds)}"

    @property
    def dead_letter_exchange(self) -> str:
        return f"{self.namespace}.dlx"

    @property
    def dead_queue(self) -> str:
        return f"{self.namespace}.dead"

    @property
    def events_exchange(self) -> str:
        """Topic exchange of the events (``shared/events.py``); routing key ``<event>.<lane>``."""
        return f"{self.namespace}.events"

    @property
    def events_queue(self) -> str:
        """The optional queue of every event (``MAILFLEET_EVENTS_QUEUE=on``)."""
        return f"{self.namespace}.events.all"

    @property
    def events_dead_queue(self) -> str:
        """Events a webhook endpoint finally refused or never took."""
        return f"{self.namespace}.events.dead"

    def redis_key(self, *parts: str) -> str:
        return ":".join((self.namespace, *parts))

    @property
    def delivered_counter(self) -> str:
        """Recipients accepted by relays, counted by workers; ``mailfleet stats`` makes a rate."""
        return self.redis_key("stats", "delivered")

    def sent_ledger(self, job_id: str) -> str:
        """The recipients of ``job_id`` a relay already accepted (a hash)."""
        return self.redis_key("sent", job_id)
