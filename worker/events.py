"""The events a sender's batch gives rise to, gathered as its deliveries are settled and
published at the batch's commit, before its acks (``batch_commit.py``): a job is acked only
once the broker confirmed its events. A crash in between repeats them, with the same ids.

``seq`` orders one job's events. It is derived, not counted: ``round`` (how often the job
was replayed from the dead-letter queue), the attempt, then the stage within the attempt
(a bounce comes before the dead letter it causes). A later fact about a job therefore has a
higher ``seq``, and a fact published twice has the same ``seq`` as well as the same id.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from mailfleet.shared.events import Event, EventKind, SmtpDetail, event_id, utc_ms
from mailfleet.shared.job import EmailJob
from mailfleet.shared.names import REPLAYS
from mailfleet.worker.inbox import Delivery
from mailfleet.worker.smtp.replies import SmtpReply

_ATTEMPTS_PER_ROUND = 10_000  # above any MAILFLEET_MAX_ATTEMPTS (at most 1000)
_STAGES = 2
_LATER_STAGE = {EventKind.DEAD_LETTERED}


def replays_of(delivery: Delivery) -> int:
    """How often the delivery's job came back from the dead-letter queue."""
    replays = delivery.headers.get(REPLAYS, 0)
    return replays if isinstance(replays, int) and replays >= 0 else 0


def seq_of(replays: int, attempt: int, kind: EventKind) -> int:
    """The ``seq`` of an event of ``kind`` at that attempt. A report that comes back later
    (a bounce, a complaint) follows its attempt's delivery."""
    stage = 1 if kind in _LATER_STAGE else 0
    return (replays * _ATTEMPTS_PER_ROUND + attempt) * _STAGES + stage


def _seq(delivery: Delivery, kind: EventKind) -> int:
    return seq_of(replays_of(delivery), delivery.attempt, kind)


def smtp_detail(reply: SmtpReply) -> SmtpDetail:
    enhanced = reply.enhanced
    return SmtpDetail.model_construct(
        code=reply.code,
        enhanced=".".join(map(str, enhanced)) if enhanced else None,
        text=reply.text[:500],
    )


class EventRecorder:
    """Collects the events of one sender's batch; :meth:`take` hands them to the commit.
    Disabled (``MAILFLEET_EVENTS=off``), it records nothing."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._pending: list[Event] = []

    def record(
        self,
        kind: EventKind,
        delivery: Delivery,
        job: EmailJob,
        recipients: Iterable[str],
        *,
        reply: SmtpReply | None = None,
        replies: dict[str, SmtpReply] | None = None,
        relay: str | None = None,
        reason: str | None = None,
        retry_in: float | None = None,
    ) -> None:
        """One event of ``kind`` per recipient; ``replies`` gives each its own reply."""
        if not self.enabled:
            return
        now = datetime.now(UTC)
        next_at = utc_ms(now + timedelta(seconds=retry_in)) if retry_in is not None else None
        occurred = utc_ms(now)
        seq = _seq(delivery, kind)
        replays = replays_of(delivery)
        tags, metadata = dict(job.tags), dict(job.metadata)
        for rcpt in recipients:
            answer = replies.get(rcpt, reply) if replies else reply
            # Built from values already checked: constructed, not validated (the hot path).
            self._pending.append(
                Event.model_construct(
                    event=kind,
                    event_id=event_id(job.id, rcpt, delivery.attempt, kind, replays),
                    job_id=job.id,
                    recipient=rcpt,
                    lane=delivery.lane,
                    attempt=delivery.attempt,
                    occurred_at=occurred,
                    seq=seq,
                    smtp=smtp_detail(answer) if answer is not None else None,
                    relay=relay,
                    reason=reason,
                    next_attempt_at=next_at,
                    tags=tags,
                    metadata=metadata,
                )
            )

    def take(self) -> list[Event]:
        pending, self._pending = self._pending, []
        return pending
