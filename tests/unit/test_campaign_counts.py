"""Per-campaign counters: the Settler counts each outcome of a campaign's job, and the
counters ride on the write-ahead ledger's connection without ever failing a settle."""

from __future__ import annotations

import time

from structlog.testing import capture_logs

from mailfleet.shared.job import EmailJob
from mailfleet.shared.names import Names
from mailfleet.shared.settings import Settings
from mailfleet.worker.batch_commit import BatchCommit, HeldAcks, WriteAheadLedger
from mailfleet.worker.campaign_counts import CampaignCounters, Outcome
from mailfleet.worker.inbox import Delivery
from mailfleet.worker.metrics import WorkerMetrics
from mailfleet.worker.settle import Settler
from mailfleet.worker.smtp.replies import SmtpReply
from mailfleet.worker.smtp.transport import SendResult
from tests.unit.fakes import (
    FakeAcker,
    FakeAdaptive,
    FakeLedger,
    FakePublisher,
    FakeSuppressor,
    Journal,
    make_delivery,
    make_job,
    unreachable_redis,
)

SETTINGS = Settings(namespace="unit", retry_delays=[5.0, 30.0], max_attempts=3)
ANN = "rcpt1@example.org"


class RecordingCounters:
    def __init__(self) -> None:
        self.counted: list[tuple[str | None, tuple[Outcome, ...], int]] = []

    def count(self, job: EmailJob, *outcomes: Outcome, recipients: int = 1) -> None:
        self.counted.append((job.campaign, outcomes, recipients))


def _settler(counters: RecordingCounters) -> Settler:
    journal: Journal = []
    return Settler(
        settings=SETTINGS,
        acker=FakeAcker(journal),
        publisher=FakePublisher(journal),
        ledger=FakeLedger(journal),
        suppression=FakeSuppressor(),
        metrics=WorkerMetrics(),
        adaptive=FakeAdaptive(),
        counters=counters,
    )


def _result(reply: SmtpReply | None) -> SendResult:
    if reply is None:
        return SendResult("relay:25", accepted=[ANN], refused={})
    return SendResult("relay:25", accepted=[], refused={ANN: reply})


class TestSettlerCounts:
    def test_each_outcome_is_counted_for_the_campaign(self) -> None:
        """Sent, a retry (deferred), a bounce, a suppressed recipient, a wait, a bad render,
        a complaint-guard pause (deferred)."""
        counters = RecordingCounters()
        settler = _settler(counters)
        job = make_job(1, campaign="spring")
        delivery = make_delivery(job)

        settler.settle(delivery, job, _result(None), time.monotonic())
        settler.settle(delivery, job, _result(SmtpReply(450, "busy")), time.monotonic())
        settler.settle(delivery, job, _result(SmtpReply(550, "5.7.1 no")), time.monotonic())
        settler.suppressed(delivery, job, [ANN])
        settler.defer(delivery, job, 60.0)
        settler.invalid(delivery, "template: x: missing variable", job)
        settler.pause(delivery, job)

        assert [
            ("spring", (Outcome.SENT,), 1),
            ("spring", (Outcome.DEFERRED,), 1),
            ("spring", (Outcome.DEAD_LETTERED, Outcome.BOUNCED), 1),
            ("spring", (Outcome.DEAD_LETTERED, Outcome.SUPPRESSED), 1),
            ("spring", (Outcome.DEFERRED,), 1),
            ("spring", (Outcome.DEAD_LETTERED,), 1),
            ("spring", (Outcome.DEFERRED,), 1),
        ] == counters.counted


class FakeQueue:
    def __init__(self) -> None:
        self.queued: list[tuple[str | int, ...]] = []

    def queue(self, commands: list[tuple[str | int, ...]]) -> None:
        self.queued += commands


class TestCampaignCounters:
    def test_a_batch_is_summed_into_one_increment_per_counter(self) -> None:
        """Three sends and a bounce of one campaign: two HINCRBYs and one EXPIRE, queued
        for the ledger's next write; a job without a campaign adds nothing."""
        queue = FakeQueue()
        counters = CampaignCounters(queue, Names("unit"), 60)
        spring = make_job(1, campaign="spring")

        for _ in range(3):
            counters.count(spring, Outcome.SENT)
        counters.count(spring, Outcome.DEAD_LETTERED, Outcome.BOUNCED, recipients=2)
        counters.count(make_job(2), Outcome.SENT)
        assert [] == queue.queued  # nothing before the batch's commit
        counters.flush()
        counters.flush()  # a second flush has nothing left

        assert [
            ("HINCRBY", "{unit}:campaign:spring", "sent", 3),
            ("HINCRBY", "{unit}:campaign:spring", "dead_lettered", 2),
            ("HINCRBY", "{unit}:campaign:spring", "bounced", 2),
            ("EXPIRE", "{unit}:campaign:spring", 60),
        ] == queue.queued

    def test_the_counts_ride_on_the_batch_commit(self) -> None:
        """BatchCommit.commit flushes the campaign counters into the ledger's queue."""
        queue = FakeQueue()
        counters = CampaignCounters(queue, Names("unit"), 60)
        counters.count(make_job(1, campaign="spring"), Outcome.SENT)
        ledger = WriteAheadLedger(unreachable_redis(), Names("unit"), 60)
        commit = BatchCommit(ledger, HeldAcks(FakeSettling()), campaigns=counters)

        with capture_logs():
            commit.commit()

        assert ("HINCRBY", "{unit}:campaign:spring", "sent", 1) == queue.queued[0]


class FakeSettling:
    def ack_many(self, deliveries: list[Delivery]) -> None:
        return None

    def requeue(self, delivery: Delivery) -> None:
        return None
