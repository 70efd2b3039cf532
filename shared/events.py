"""What became of each email, as a wire contract: one ``mailfleet.event.v1`` JSON message per
fact, published to the topic exchange ``{ns}.events`` with the routing key
``<event>.<lane>`` (``delivered.transactional``).

``event_id`` is derived from (job id, recipient, attempt, kind, replays), never drawn at
random, so a
fact published twice (a worker that died between the events' confirm and the job's ack)
carries the same id both times, and a consumer de-duplicates on it.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from mailfleet.shared.clock import utc_stamp
from mailfleet.shared.job import Lane

EVENT_TYPE = "mailfleet.event.v1"
# The namespace of the ids' UUIDv5s: fixed, so that every worker derives the same id.
_EVENT_IDS = uuid.UUID("6f1c1c5e-3a55-4d0e-9a5c-6d2b8f3c1a10")


class EventKind(StrEnum):
    DELIVERED = "delivered"  # the relay accepted this recipient
    DEFERRED = "deferred"  # a transient failure: retried at next_attempt_at
    BOUNCED = "bounced"  # a permanent failure: the relay's reply, or a DSN that came back
    COMPLAINED = "complained"  # the recipient reported the email as spam (an ARF report)
    DEAD_LETTERED = "dead_lettered"  # given up on, with the reason
    SUPPRESSED = "suppressed"  # not sent: the recipient is on the suppression list
    DUPLICATE_SKIPPED = "duplicate_skipped"  # not sent: already accepted for this job id


class SmtpDetail(BaseModel):
    """The relay's reply; ``code`` 0 stands for no reply (refused connection, timeout)."""

    model_config = ConfigDict(frozen=True)

    code: int
    enhanced: str | None = None  # "5.1.1"
    text: str = ""


class Event(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    event: EventKind
    event_id: str
    job_id: str
    recipient: str
    lane: Lane
    attempt: int = Field(ge=1)
    occurred_at: str  # UTC, milliseconds: 2026-12-02T01:20:00.123Z
    seq: int = Field(ge=1, description="orders one job's events: a later fact has a higher seq")
    smtp: SmtpDetail | None = None
    relay: str | None = None
    reason: str | None = None  # dead_lettered: permanent, exhausted or suppressed
    next_attempt_at: str | None = None  # deferred: when the retry comes back (UTC, ms)
    tags: dict[str, Any] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @property
    def routing_key(self) -> str:
        return f"{self.event.value}.{self.lane.value}"

    def to_wire(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()

    @classmethod
    def from_wire(cls, body: bytes) -> Event:
        return cls.model_validate_json(body)


def event_id(job_id: str, recipient: str, attempt: int, kind: EventKind, replays: int = 0) -> str:
    """The id of one fact: the same inputs give the same id in every process. ``replays``
    (how often the job came back from the dead-letter queue) tells a replay's attempt 1
    from the first round's."""
    name = f"{job_id}\n{recipient}\n{attempt}\n{kind.value}"
    if replays:
        name += f"\n{replays}"
    return str(uuid.uuid5(_EVENT_IDS, name))


def utc_ms(moment: datetime | None = None) -> str:
    """``moment`` (now by default) as UTC with milliseconds and a ``Z``."""
    return utc_stamp(moment or datetime.now(UTC), timespec="milliseconds")
