"""The worker's report counts: summed over a batch, queued at its commit; with VERP, each
accepted recipient's reference queued at once, to go out with its sent mark."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from mailfleet.shared.names import Names
from mailfleet.shared.reports import Command, ReportKeys
from mailfleet.shared.sent_refs import SentRefs
from mailfleet.worker.metrics import WorkerMetrics
from mailfleet.worker.tally import Tally
from tests.integration.helpers import make_job
from tests.unit.fakes import make_delivery

NOW = datetime(2026, 12, 2, 7, 0, tzinfo=UTC)


class _Queue:
    def __init__(self) -> None:
        self.commands: list[Command] = []

    def queue(self, commands: list[Command]) -> None:
        self.commands += commands


def _tally(queue: _Queue, refs: SentRefs | None = None) -> Tally:
    return Tally(queue, ReportKeys(Names("ns")), WorkerMetrics(), refs, clock=lambda: NOW)


class TestTally:
    def test_a_batch_is_one_increment_per_counter(self) -> None:
        """Three emails to one domain and a deferral: two increments and the keys' expiries."""
        queue = _Queue()
        tally = _tally(queue)
        for number in (1, 2, 3):
            job = make_job(number)
            tally.sent(make_delivery(job), job, job.recipients())
        tally.deferred(make_delivery(make_job(4)), make_job(4), ["rcpt4@example.org"])
        assert [] == queue.commands  # nothing before the commit
        tally.flush()
        day = [c for c in queue.commands if c[0] == "HINCRBY" and c[1] == "{ns}:report:2026-12-02"]
        assert [
            ("HINCRBY", "{ns}:report:2026-12-02", "sent|example.com|example.org|transactional", 3),
            (
                "HINCRBY",
                "{ns}:report:2026-12-02",
                "deferred|example.com|example.org|transactional",
                1,
            ),
        ] == day
        assert 2 == sum(1 for command in queue.commands if command[0] == "EXPIRE")

    def test_expiries_are_sent_once_per_key(self) -> None:
        queue = _Queue()
        tally = _tally(queue)
        for number in (1, 2):
            job = make_job(number)
            tally.sent(make_delivery(job), job, job.recipients())
            tally.flush()
        assert 2 == sum(1 for command in queue.commands if command[0] == "EXPIRE")

    def test_with_verp_each_accepted_recipient_has_its_reference_at_once(self) -> None:
        queue = _Queue()
        refs = SentRefs(None, Names("ns"), 3600)  # type: ignore[arg-type]  # only builds commands
        tally = _tally(queue, refs)
        job = make_job(1, to=["a@example.org", "b@example.org"])
        tally.sent(make_delivery(job), job, ["a@example.org"])
        sets = [command for command in queue.commands if command[0] == "SET"]
        assert 2 == len(sets)  # the reference and the Message-ID's
        ref = json.loads(str(sets[0][2]))
        assert ("job-1", "a@example.org", "transactional", 1) == (
            ref["j"],
            ref["r"],
            ref["l"],
            ref["a"],
        )
        assert "job-1\na@example.org" == sets[1][2]
