"""Per-campaign counters, kept by the worker: what became of a campaign's jobs.

``{ns}:campaign:<id>`` is a hash of ``sent``, ``deferred``, ``dead_lettered``, ``bounced`` and
``suppressed`` (recipients, which for a campaign's one-recipient jobs are jobs), kept for the
sent ledger's TTL from the last change. A batch's counts are summed and queued on the
sender's :class:`~mailfleet.worker.batch_commit.WriteAheadLedger` at the batch's commit (one
HINCRBY per campaign and outcome, one EXPIRE per campaign), written with the sent marks and
their replies read with theirs: counting adds no round trip, as the report counters of
``worker/tally.py`` do. A counter that cannot be written is logged at the flush; it never
holds up an email.
"""

from __future__ import annotations

from collections import Counter
from enum import StrEnum
from typing import Protocol

from mailfleet.shared.job import EmailJob
from mailfleet.shared.names import Names

Command = tuple[str | int, ...]


class Outcome(StrEnum):
    SENT = "sent"
    DEFERRED = "deferred"  # each time a job goes to a delay tier: a retry, or a wait
    DEAD_LETTERED = "dead_lettered"  # whatever the reason, bounced and suppressed included
    BOUNCED = "bounced"  # dead-lettered on a permanent (5xx) reply
    SUPPRESSED = "suppressed"  # dead-lettered: on the suppression list when its turn came


class Queue(Protocol):
    def queue(self, commands: list[Command]) -> None: ...


class CampaignCounters:
    def __init__(self, queue: Queue, names: Names, ttl_seconds: float) -> None:
        self._queue = queue
        self._names = names
        self._ttl = int(ttl_seconds)
        self._pending: Counter[tuple[str, Outcome]] = Counter()

    def count(self, job: EmailJob, *outcomes: Outcome, recipients: int = 1) -> None:
        """Add ``recipients`` to each of ``outcomes`` of the job's campaign, if it has one."""
        if job.campaign is None or recipients <= 0:
            return
        for outcome in outcomes:
            self._pending[job.campaign, outcome] += recipients

    def flush(self) -> None:
        """Queue the batch's sums; the batch's commit writes them with its marks."""
        if not self._pending:
            return
        pending, self._pending = self._pending, Counter()
        commands: list[Command] = [
            ("HINCRBY", self._names.campaign(campaign), outcome.value, n)
            for (campaign, outcome), n in pending.items()
        ]
        campaigns = dict.fromkeys(campaign for campaign, _ in pending)
        commands += [
            ("EXPIRE", self._names.campaign(campaign), self._ttl) for campaign in campaigns
        ]
        self._queue.queue(commands)


class NoCounters:
    """For a settler without campaign counters (tests, tools)."""

    def count(self, job: EmailJob, *outcomes: Outcome, recipients: int = 1) -> None:
        return None
