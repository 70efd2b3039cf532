"""One dead letter as an operator sees it, read from a message of ``{ns}.dead``.

Two kinds reach the dead-letter queue:

* the worker's, republished with ``x-mailfleet-reason`` / ``-error`` / ``-attempts`` /
  ``-failed-at`` / ``-lane`` (and ``x-mailfleet-recipients`` when only some recipients
  failed);
* the broker's own, when a lane queue's ``x-delivery-limit`` was exceeded: these carry no
  ``x-mailfleet-*`` reason, only ``x-death``, from which the reason ``crashed`` and the lane
  are derived.

Nothing here does I/O; :class:`Selection` holds the filters of ``mailfleet dlq``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from mailfleet.shared import names as headers
from mailfleet.shared.addresses import domain_of
from mailfleet.shared.clock import as_utc
from mailfleet.shared.errors import InvalidJobError
from mailfleet.shared.job import EmailJob, JobLimits, Lane, parse_message
from mailfleet.shared.names import Names

REASONS = ("invalid", "permanent", "exhausted", "suppressed", "crashed", "ambiguous", "unknown")
_LANES = {lane.value for lane in Lane}


@dataclass(frozen=True)
class DeadLetter:
    """A dead letter; ``job`` is None (and ``problem`` says why) when the body is not a job."""

    delivery_tag: int
    id: str
    reason: str
    error: str
    attempts: int | None
    lane: str
    recipients: list[str]
    recipients_header: bool
    failed_at: datetime | None
    headers: dict[str, Any]
    properties: dict[str, Any]
    body: bytes
    job: EmailJob | None
    problem: str | None = None

    @property
    def fingerprint(self) -> tuple[str, str, str, str, tuple[str, ...]]:
        """What tells two letters of one job apart (ids repeat in the dead-letter queue)."""
        failed = "" if self.failed_at is None else self.failed_at.isoformat()
        return (self.id, failed, self.reason, self.error, tuple(self.recipients))

    @property
    def domains(self) -> list[str]:
        """Recipient domains of the recipients still to be tried, sorted."""
        return sorted({domain_of(rcpt) for rcpt in self.recipients})


def header_text(value: Any) -> str:
    """An AMQP header value as text (py-amqp gives bytes for byte arrays); "" for none."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return "" if value is None else str(value)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _iso_time(value: Any) -> datetime | None:
    try:
        return as_utc(datetime.fromisoformat(header_text(value)))
    except ValueError:
        return None


def last_death(message_headers: dict[str, Any]) -> dict[str, Any] | None:
    """The newest ``x-death`` entry (RabbitMQ puts it first): the one that brought it here."""
    deaths = message_headers.get(headers.DEATHS)
    if isinstance(deaths, list) and deaths and isinstance(deaths[0], dict):
        return deaths[0]
    return None


def _decode(body: bytes, kind: Any, limits: JobLimits) -> tuple[EmailJob | None, str | None]:
    try:
        return parse_message(body, kind, limits), None
    except InvalidJobError as exc:
        return None, str(exc)


def failure_of(message_headers: dict[str, Any], death: dict[str, Any] | None) -> tuple[str, str]:
    """``(reason, error)`` of a dead letter: the worker's headers, else what its ``x-death``
    entry says (``crashed`` past a delivery limit, RabbitMQ's words as the error)."""
    reason = header_text(message_headers.get(headers.REASON))
    error = header_text(message_headers.get(headers.ERROR))
    if not reason and death is not None:
        death_reason = header_text(death.get("reason"))
        reason = "crashed" if death_reason == "delivery_limit" else "unknown"
        error = error or f"{death_reason} in {header_text(death.get('queue'))}"
    return reason or "unknown", error


def failed_at_of(message_headers: dict[str, Any], death: dict[str, Any] | None) -> datetime | None:
    """When a dead letter failed: its failed-at header, else the time of its ``x-death``."""
    failed_at = _iso_time(message_headers.get(headers.FAILED_AT))
    if failed_at is None and death is not None and isinstance(death.get("time"), datetime):
        failed_at = as_utc(death["time"])
    return failed_at


def read_dead_letter(message: Any, names: Names, limits: JobLimits) -> DeadLetter:
    """A :class:`DeadLetter` from a py-amqp message taken from ``{ns}.dead``."""
    properties = dict(message.properties)
    message_headers = dict(properties.pop("application_headers", None) or {})
    body = message.body if isinstance(message.body, bytes) else str(message.body).encode()
    job, problem = _decode(body, properties.get("type"), limits)
    death = last_death(message_headers)
    death_queue = header_text(death.get("queue")) if death else ""
    death_lane = death_queue.removeprefix(f"{names.namespace}.")

    reason, error = failure_of(message_headers, death)
    lane = header_text(message_headers.get(headers.LANE))
    if lane not in _LANES:
        lane = death_lane if death_lane in _LANES else (job.lane.value if job else "")

    failed_at = failed_at_of(message_headers, death)
    attempts = _int(message_headers.get(headers.ATTEMPTS))
    if attempts is None:
        attempts = _int(message_headers.get(headers.ATTEMPT))

    only = headers.read_recipients(message_headers.get(headers.RECIPIENTS))
    recipients = only if only is not None else (job.recipients() if job else [])
    job_id = header_text(properties.get("message_id")) or (job.id if job else "")
    return DeadLetter(
        delivery_tag=int(message.delivery_tag),
        id=job_id,
        reason=reason,
        error=error,
        attempts=attempts,
        lane=lane,
        recipients=recipients,
        recipients_header=only is not None,
        failed_at=failed_at,
        headers=message_headers,
        properties=properties,
        body=body,
        job=job,
        problem=problem,
    )


@dataclass(frozen=True)
class Selection:
    """Filters of ``mailfleet dlq``: a letter matches when it passes every filter given."""

    reasons: frozenset[str] = field(default_factory=frozenset)
    lanes: frozenset[str] = field(default_factory=frozenset)
    domains: frozenset[str] = field(default_factory=frozenset)
    ids: frozenset[str] = field(default_factory=frozenset)
    older_than: float | None = None  # seconds since it failed

    def matches(self, letter: DeadLetter, now: datetime) -> bool:
        if self.ids and letter.id not in self.ids:
            return False
        if self.reasons and letter.reason not in self.reasons:
            return False
        if self.lanes and letter.lane not in self.lanes:
            return False
        if self.domains and not {d.lower() for d in self.domains}.intersection(letter.domains):
            return False
        if self.older_than is not None:
            # An age we cannot know never counts as old enough.
            age = None if letter.failed_at is None else (now - letter.failed_at).total_seconds()
            if age is None or age < self.older_than:
                return False
        return True

    def describe(self) -> str:
        """``reason=permanent lane=bulk`` or ``all``, for prompts and summaries."""
        parts = [
            f"{name}={','.join(sorted(values))}"
            for name, values in (
                ("reason", self.reasons),
                ("lane", self.lanes),
                ("domain", self.domains),
                ("id", self.ids),
            )
            if values
        ]
        if self.older_than is not None:
            parts.append(f"older-than={self.older_than:g}s")
        return " ".join(parts) or "all"
