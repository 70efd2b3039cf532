"""Per-campaign counters, kept by the worker: what became of a campaign's jobs.

``{ns}:campaign:<id>`` is a hash of ``sent``, ``deferred``, ``dead_lettered``, ``bounced`` and
``suppressed`` (recipients, which for a campaign's one-recipient jobs are jobs), kept for the
sent ledger's TTL from the last change. The commands are written on the sender's
:class:`~mailfleet.worker.batch_commit.WriteAheadLedger` connection beside the sent marks and
their replies read with theirs at the batch's end: counting adds no round trip. A counter that
cannot be written is logged and skipped; it never holds up an email.
"""

from __future__ import annotations

from enum import StrEnum

import structlog

from mailfleet.shared.errors import RedisUnavailable
from mailfleet.shared.job import EmailJob
from mailfleet.shared.names import Names
from mailfleet.worker.batch_commit import WriteAheadLedger

log = structlog.get_logger("mailfleet.worker")


class Outcome(StrEnum):
    SENT = "sent"
    DEFERRED = "deferred"  # each time a job goes to a delay tier: a retry, or a wait
    DEAD_LETTERED = "dead_lettered"  # whatever the reason, bounced and suppressed included
    BOUNCED = "bounced"  # dead-lettered on a permanent (5xx) reply
    SUPPRESSED = "suppressed"  # dead-lettered: on the suppression list when its turn came


class CampaignCounters:
    def __init__(self, ledger: WriteAheadLedger, names: Names, ttl_seconds: float) -> None:
        self._ledger = ledger
        self._names = names
        self._ttl = int(ttl_seconds)

    def count(self, job: EmailJob, *outcomes: Outcome, recipients: int = 1) -> None:
        """Add ``recipients`` to each of ``outcomes`` of the job's campaign, if it has one."""
        if job.campaign is None or recipients <= 0:
            return
        key = self._names.campaign(job.campaign)
        commands: list[tuple[str | int, ...]] = [
            ("HINCRBY", key, outcome.value, recipients) for outcome in outcomes
        ]
        commands.append(("EXPIRE", key, self._ttl))
        try:
            self._ledger.write(commands, "cannot count the campaign")
        except RedisUnavailable as exc:
            log.warning("campaign_count_failed", job_id=job.id, error=str(exc))


class NoCounters:
    """For a settler without campaign counters (tests, tools)."""

    def count(self, job: EmailJob, *outcomes: Outcome, recipients: int = 1) -> None:
        return None
