"""Processing one report that came back: parse, match, then act, once.

- A hard bounce puts the address on the suppression list, with the reason and the
  report's diagnostic, and publishes a ``bounced`` event.
- A soft bounce is counted; nothing is suppressed.
- A complaint suppresses the address, publishes a ``complained`` event, and has the
  complaint guard judge the sender domain.
- Anything else is ignored and counted by cause.

Each finding's effects in Redis (suppression, counters) are applied by one script that
first sets the finding's seen-mark, so the same report processed twice changes nothing the
second time. Its event is published before that: a crash in between publishes it again
with the same event id, which consumers fold.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.resources import files
from typing import Literal, Protocol

import redis
import structlog

from mailfleet.shared.addresses import domain_of
from mailfleet.shared.complaint_guard import ComplaintGuard
from mailfleet.shared.events import Event, EventKind, event_id, utc_ms
from mailfleet.shared.job import Lane
from mailfleet.shared.redis_client import redis_errors
from mailfleet.shared.reports import Command, Count, Metric, ReportKeys
from mailfleet.shared.sent_refs import SentRefs
from mailfleet.shared.settings import Settings
from mailfleet.shared.suppression import SuppressionList, entry_json
from mailfleet.shared.verp import Verp
from mailfleet.worker.bounces.matching import NoMatch, match
from mailfleet.worker.bounces.metrics import BounceMetrics
from mailfleet.worker.bounces.model import Report
from mailfleet.worker.bounces.parse import parse_report
from mailfleet.worker.bounces.verdicts import Finding, Verdict, finding
from mailfleet.worker.events import seq_of

log = structlog.get_logger("mailfleet.bounces")
_SCRIPT = files("mailfleet.worker.bounces").joinpath("apply_once.lua").read_text()
_EVENTS = {Verdict.HARD: EventKind.BOUNCED, Verdict.COMPLAINT: EventKind.COMPLAINED}
_METRICS = {
    Verdict.HARD: Metric.HARD_BOUNCED,
    Verdict.SOFT: Metric.SOFT_BOUNCED,
    Verdict.COMPLAINT: Metric.COMPLAINED,
}


class EventSink(Protocol):
    def publish(self, events: list[Event]) -> None: ...


@dataclass(frozen=True)
class Outcome:
    """What became of one message: the line ``mailfleet bounce`` prints."""

    status: Literal["processed", "ignored"]
    line: str


class BounceProcessor:
    def __init__(
        self,
        settings: Settings,
        verp: Verp,
        client: redis.Redis,
        events: EventSink | None,
        metrics: BounceMetrics | None = None,
    ) -> None:
        self.metrics = metrics or BounceMetrics()
        self._max_bytes = settings.inbound_max_bytes
        self._ttl = int(settings.sent_ttl)
        self._verp = verp
        self._client = client
        self._names = settings.names
        self._refs = SentRefs(client, settings.names, settings.sent_ttl)
        self._suppression = SuppressionList(client, settings.names)
        self._keys = ReportKeys(settings.names, settings.report_days)
        self._guard = ComplaintGuard(
            client, self._keys, settings.complaint_pause, settings.complaint_min_sends
        )
        self._events = events
        self._apply = client.register_script(_SCRIPT)

    def process(self, raw: bytes, envelope_to: str | None = None) -> Outcome:
        """Act on ``raw``, a message sent to the bounce domain. Raises
        :class:`~mailfleet.shared.errors.MailfleetError` when Redis or the broker fails, so
        the MTA keeps the message and tries again."""
        if len(raw) > self._max_bytes:
            size = f"{len(raw)} bytes, over MAILFLEET_INBOUND_MAX_BYTES={self._max_bytes}"
            return self._ignore("too large", size)
        report = parse_report(raw, envelope_to)
        if report.kind in ("ignored", "auto_reply"):
            return self._ignore(report.reason.partition(":")[0] or report.kind, report.reason)
        matched = match(report, self._verp, self._refs)
        if isinstance(matched, NoMatch):
            return self._ignore(matched.cause.partition(" (")[0], matched.cause)
        findings = [finding(report, one) for one in matched]
        acted = [one for one in findings if one.verdict is not Verdict.NOTHING]
        if not acted:
            return self._ignore("no failure", f"{report.kind} reporting no failure")
        lines = [self._act(report, one) for one in acted]
        return Outcome("processed", "; ".join(lines))

    def _act(self, report: Report, found: Finding) -> str:
        ref = found.match.ref
        about = f"{found.verdict.value} {found.status}".strip() + f" for job {ref.job_id}"
        seen = self._names.redis_key("report-seen", found.match.digest, found.verdict.name)
        with redis_errors("cannot read the report marks"):
            if self._client.exists(seen):
                return f"{about}: already processed"
        kind = _EVENTS.get(found.verdict)
        if kind is not None and self._events is not None:
            self._events.publish([_event(kind, found)])
        commands = self._commands(found)
        with redis_errors("cannot record the report"):
            applied = self._apply(keys=[seen], args=[self._ttl, *_flatten(commands)])
        if not applied:
            return f"{about}: already processed"
        self.metrics.reports.labels(
            metric=_METRICS[found.verdict].value, lane=ref.lane, sender_domain=ref.sender
        ).inc()
        log.info(
            "report_processed",
            verdict=found.verdict.value,
            status=found.status,
            job_id=ref.job_id,
            domain=domain_of(ref.recipient),
            sender=ref.sender,
            lane=ref.lane,
        )
        if found.verdict is Verdict.COMPLAINT:
            verdict = self._guard.evaluate(ref.sender)
            if verdict.paused:
                log.warning(
                    "bulk_paused_by_complaints",
                    sender=ref.sender,
                    sent=verdict.sent,
                    complained=verdict.complained,
                )
        suppressed = ": suppressed" if found.verdict is not Verdict.SOFT else ": recorded"
        return about + suppressed

    def _commands(self, found: Finding) -> list[Command]:
        ref = found.match.ref
        now = datetime.now(UTC)
        count = Count(_METRICS[found.verdict], ref.sender, domain_of(ref.recipient), ref.lane)
        commands = self._keys.increments([count], now) + self._keys.expiries(now)
        if found.verdict is not Verdict.SOFT:
            entry = entry_json(found.reason)
            commands.append(("HSET", self._suppression.key, ref.recipient.lower(), entry))
        return commands

    def _ignore(self, cause: str, detail: str) -> Outcome:
        now = datetime.now(UTC)
        count = Count(Metric.IGNORED, cause, "-", "-")
        commands = self._keys.increments([count], now) + self._keys.expiries(now)
        with redis_errors("cannot count the report"):
            pipeline = self._client.pipeline(transaction=False)
            for command in commands:
                pipeline.execute_command(*command)  # type: ignore[no-untyped-call]
            pipeline.execute()
        self.metrics.ignored.labels(cause=cause).inc()
        log.info("report_ignored", cause=cause, detail=detail[:300])
        return Outcome("ignored", f"ignored: {detail}")


def _flatten(commands: list[Command]) -> list[str | int]:
    words: list[str | int] = []
    for command in commands:
        words.append(len(command))
        words += [str(word) for word in command]
    return words


def _event(kind: EventKind, found: Finding) -> Event:
    ref = found.match.ref
    seq = seq_of(ref.replays, ref.attempt, EventKind.DELIVERED) + 1  # after its delivery
    return Event(
        event=kind,
        event_id=event_id(ref.job_id, ref.recipient, ref.attempt, kind, ref.replays),
        job_id=ref.job_id,
        recipient=ref.recipient,
        lane=Lane(ref.lane),
        attempt=ref.attempt,
        occurred_at=utc_ms(),
        seq=seq,
        reason=found.reason[:500],
    )
