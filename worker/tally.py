"""The worker's part of the delivery reports (``shared/reports.py``): what it sent,
deferred, dead-lettered and skipped as suppressed, per sender domain, recipient domain and
lane; and, with VERP on, what each accepted email's token stands for
(``shared/sent_refs.py``). Nothing here makes a round trip: a batch's counts are summed and
queued at its commit, the references with each sent mark (``WriteAheadLedger.queue``), and
the replies are read with the marks'.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Protocol

from mailfleet.shared.addresses import domain_of
from mailfleet.shared.job import EmailJob
from mailfleet.shared.reports import Command, Count, Metric, ReportKeys
from mailfleet.shared.sent_refs import SentRef, SentRefs
from mailfleet.shared.verp import ref_digest
from mailfleet.worker.events import replays_of
from mailfleet.worker.inbox import Delivery
from mailfleet.worker.metrics import WorkerMetrics
from mailfleet.worker.mime.build import message_id


class Queue(Protocol):
    def queue(self, commands: list[Command]) -> None: ...


def _now() -> datetime:
    return datetime.now(UTC)


class Tally:
    def __init__(
        self,
        queue: Queue,
        keys: ReportKeys,
        metrics: WorkerMetrics,
        refs: SentRefs | None = None,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self._queue = queue
        self._keys = keys
        self._metrics = metrics
        self._refs = refs
        self._clock = clock
        self._expiring: set[str] = set()  # keys whose EXPIRE this tally already sent
        self._pending: Counter[tuple[Metric, str, str, str]] = Counter()  # the batch's counts

    def sent(self, delivery: Delivery, job: EmailJob, accepted: list[str]) -> None:
        """``accepted`` took the email; with VERP, what its tokens stand for goes out with
        the email's sent mark."""
        self._add(Metric.SENT, delivery, job, accepted)
        if self._refs is not None:
            refs = [(ref_digest(job.id, rcpt), self._ref(delivery, job, rcpt)) for rcpt in accepted]
            self._queue.queue(self._refs.commands(refs, message_id(job)))

    def deferred(self, delivery: Delivery, job: EmailJob, recipients: Iterable[str]) -> None:
        self._add(Metric.DEFERRED, delivery, job, recipients)

    def hard_bounced(self, delivery: Delivery, job: EmailJob, recipients: Iterable[str]) -> None:
        self._add(Metric.HARD_BOUNCED, delivery, job, recipients)

    def dead_lettered(self, delivery: Delivery, job: EmailJob, recipients: Iterable[str]) -> None:
        self._add(Metric.DEAD_LETTERED, delivery, job, recipients)

    def suppressed(self, delivery: Delivery, job: EmailJob, recipients: Iterable[str]) -> None:
        self._add(Metric.SUPPRESSED, delivery, job, recipients)

    def flush(self) -> None:
        """Queue the batch's counts, one increment per counter however many emails it
        holds; the batch's commit writes them (``BatchCommit.commit``)."""
        if not self._pending:
            return
        pending, self._pending = self._pending, Counter()
        counts = [
            Count(metric, sender, domain, lane, n)
            for (metric, sender, domain, lane), n in pending.items()
        ]
        for count in counts:
            self._metrics.report(count.metric.value, count.lane, count.sender, count.n)
        now = self._clock()
        self._queue.queue(self._keys.increments(counts, now) + self._expiries(now))

    def _add(
        self, metric: Metric, delivery: Delivery, job: EmailJob, recipients: Iterable[str]
    ) -> None:
        sender = domain_of(job.from_)
        lane = delivery.lane.value
        for rcpt in recipients:
            self._pending[metric, sender, domain_of(rcpt), lane] += 1

    def _expiries(self, now: datetime) -> list[Command]:
        """The EXPIREs of the current day's and hour's keys, once per key and tally."""
        expiries = self._keys.expiries(now)
        fresh = [command for command in expiries if command[1] not in self._expiring]
        self._expiring.update(str(command[1]) for command in fresh)
        return fresh

    @staticmethod
    def _ref(delivery: Delivery, job: EmailJob, recipient: str) -> SentRef:
        return SentRef(
            job.id,
            recipient,
            delivery.lane.value,
            domain_of(job.from_),
            delivery.attempt,
            replays_of(delivery),
        )
