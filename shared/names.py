"""Every RabbitMQ and Redis name mailfleet uses, derived from one namespace.

Two deployments (or two test runs) with different namespaces share a broker and a Redis
without touching each other.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mailfleet.shared.durations import format_duration

if TYPE_CHECKING:  # job.py reads JOB_ID_HEADER from here
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
# Headers RabbitMQ adds when it dead-letters or redelivers a message (prefixes of their names);
# a message republished by mailfleet leaves them behind.
DEATHS = "x-death"
DELIVERY_COUNT = "x-delivery-count"
BROKER_HEADERS = (DEATHS, "x-first-death-", "x-last-death-", DELIVERY_COUNT)

# The email header the worker writes the job id into; ledgers and sinks correlate by it.
JOB_ID_HEADER = "X-Mailfleet-Id"


def read_recipients(value: object) -> list[str] | None:
    """The recipients an ``x-mailfleet-recipients`` value lists (a JSON array), or None when
    it is absent or unreadable: the message is then for every recipient of its job."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return None
    try:
        recipients = json.loads(value)
    except json.JSONDecodeError:
        return None
    return [str(item) for item in recipients] if isinstance(recipients, list) else None


def write_recipients(message_headers: dict[str, Any], recipients: list[str] | None) -> None:
    """Set ``x-mailfleet-recipients`` to ``recipients``, or remove it (None: all of them)."""
    if recipients is None:
        message_headers.pop(RECIPIENTS, None)
    else:
        message_headers[RECIPIENTS] = json.dumps(recipients)


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

    @property
    def redis_prefix(self) -> str:
        """``{ns}:``, the start of every Redis key of the namespace. The braces make the
        namespace a Redis Cluster hash tag: every key lives in one slot, so one script call
        may touch any of them (and one namespace's limiter lives on one shard)."""
        return f"{{{self.namespace}}}:"

    @property
    def legacy_redis_prefix(self) -> str:
        """``ns:``, the keys' start before the hash tag (``mailfleet migrate-keys``)."""
        return f"{self.namespace}:"

    def redis_key(self, *parts: str) -> str:
        return self.redis_prefix + ":".join(parts)

    @property
    def delivered_counter(self) -> str:
        """Recipients accepted by relays, counted by workers; ``mailfleet stats`` makes a rate."""
        return self.redis_key("stats", "delivered")

    def sent_ledger(self, job_id: str) -> str:
        """The recipients of ``job_id`` a relay already accepted (a hash)."""
        return self.redis_key("sent", job_id)

    def delivered_slot(self, slot: int) -> str:
        """Recipients accepted in one 10-second slot (``shared/send_history.py``), for charts."""
        return self.redis_key("stats", "delivered", str(slot))

    def worker_beat(self, worker: str) -> str:
        """A worker's last heartbeat (``shared/worker_beats.py``), gone when it stops beating."""
        return self.redis_key("workers", worker)

    def template(self, name: str) -> str:
        """A template's versions (a hash: ``v<N>`` → source JSON, ``t<N>`` → time put,
        ``latest`` → N); never expires, versions are never changed."""
        return self.redis_key("template", name)

    @property
    def template_index(self) -> str:
        """The names of every stored template (a set)."""
        return self.redis_key("templates")

    def campaign(self, campaign_id: str) -> str:
        """A campaign's counters (a hash), kept as long as the sent ledger."""
        return self.redis_key("campaign", campaign_id)

    def campaign_published(self, campaign_id: str) -> str:
        """The recipients (address digests) whose job the broker confirmed (a set)."""
        return self.redis_key("campaign", campaign_id, "published")
