"""Pipeline.handle_batch: decode, screen (crash limit, invalid, not yet due), read the batch's
recipients in one round trip, send what is left, settle each. A real Settler, Dispatcher and
RelayPool, with fakes of the broker, Redis and SMTP seams."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from mailfleet.shared import names as headers
from mailfleet.shared.durations import Rate
from mailfleet.shared.errors import PublishNacked, RedisUnavailable
from mailfleet.shared.job import EmailJob
from mailfleet.shared.settings import Settings
from mailfleet.worker.dispatch import Dispatcher
from mailfleet.worker.inbox import Delivery, Inbox
from mailfleet.worker.limits.admission import Admission
from mailfleet.worker.limits.buckets import TokenGrant
from mailfleet.worker.metrics import WorkerMetrics
from mailfleet.worker.pipeline import Pipeline
from mailfleet.worker.redis_gate import RedisGate
from mailfleet.worker.retry import RetryPolicy
from mailfleet.worker.settle import Settler
from mailfleet.worker.smtp.relay_pool import RelayPool
from mailfleet.worker.smtp.replies import SmtpReply
from tests.unit.fakes import (
    FakeAcker,
    FakeAdaptive,
    FakeLedger,
    FakeLimiter,
    FakePublisher,
    FakeRecipients,
    FakeSuppressor,
    FakeTransport,
    Reply,
    make_delivery,
    make_job,
    raw_grant,
    refuse_all,
    refuse_some,
)

SETTINGS = Settings(namespace="unit", retry_delays=[5.0, 30.0], delivery_limit=5)
DELAY, DLX = "unit.delay", "unit.dlx"
ANN, BOB = "ann@example.org", "bob@example.net"
BUSY = SmtpReply(450, "4.2.0 mailbox busy")


def always_current(delivery: Delivery) -> bool:
    return True


class Rig:
    """A pipeline as wiring.sender builds one, around fakes of its seams."""

    def __init__(
        self,
        *script: Reply,
        settings: Settings = SETTINGS,
        recipients: FakeRecipients | None = None,
        limiter: FakeLimiter | None = None,
        is_current: Callable[[Delivery], bool] = always_current,
        pipelining: bool = False,
    ) -> None:
        self.journal: list[str] = []
        self.acker = FakeAcker(self.journal)
        self.publisher = FakePublisher(self.journal)
        self.ledger = FakeLedger(self.journal)
        self.metrics = WorkerMetrics()
        self.settler = Settler(
            settings=settings,
            acker=self.acker,
            publisher=self.publisher,
            ledger=self.ledger,
            suppression=FakeSuppressor(),
            metrics=self.metrics,
            adaptive=FakeAdaptive(),
        )
        self.recipients = recipients or FakeRecipients()
        self.stopping = threading.Event()
        gate = RedisGate(self.stopping)
        self.inbox = Inbox()
        self.limiter = limiter
        admission = (
            Admission(limiter, gate, self.inbox, self.metrics, self.stopping) if limiter else None
        )
        pool = RelayPool(settings.smtp_relays, settings.breaker_failures, 15)
        self.transport = FakeTransport(*script, pipelining=pipelining)
        self.pipeline = Pipeline(
            limits=settings.job_limits,
            retry=RetryPolicy.from_settings(settings),
            recipients=self.recipients,
            dispatcher=Dispatcher(pool, admission, is_current),
            settler=self.settler,
            gate=gate,
            metrics=self.metrics,
        )

    def handle(self, *deliveries: Delivery) -> None:
        self.pipeline.handle_batch(list(deliveries), self.transport)

    @property
    def acked(self) -> list[int]:
        return [delivery.delivery_tag for delivery in self.acker.acked]

    @property
    def requeued(self) -> list[int]:
        return [delivery.delivery_tag for delivery in self.acker.requeued]

    def reasons(self) -> list[str]:
        return [message.headers[headers.REASON] for message in self.publisher.to(DLX)]

    def count(self, name: str, **labels: str) -> float:
        return self.metrics.registry.get_sample_value(name, labels) or 0.0


def batch(*jobs: EmailJob) -> list[Delivery]:
    return [make_delivery(job, tag=tag) for tag, job in enumerate(jobs, start=1)]


class TestSent:
    def test_each_job_of_the_batch_is_sent_marked_and_acked(self) -> None:
        rig = Rig()
        rig.handle(*batch(make_job(1), make_job(2, to=[ANN, BOB])))

        assert [["rcpt1@example.org"], [ANN, BOB]] == rig.transport.recipients_sent
        assert {"sender@example.com"} == {sent.envelope.sender for sent in rig.transport.sends}
        assert b"Subject: Test 2" in rig.transport.sends[1].envelope.data
        assert [("job-1", ["rcpt1@example.org"]), ("job-2", [ANN, BOB])] == rig.ledger.marks
        assert [1, 2] == rig.acked
        assert 2 == rig.count("mailfleet_send_seconds_count")

    def test_the_batch_s_recipients_are_read_in_one_round_trip(self) -> None:
        rig = Rig()
        rig.handle(*batch(make_job(1), make_job(2), make_job(3)))

        [read] = rig.recipients.reads
        assert ["job-1", "job-2", "job-3"] == read.job_ids
        assert [] == read.calls  # no limits: no lease calls along

    def test_a_retry_is_sent_only_to_the_recipients_it_names(self) -> None:
        job = make_job(1, to=[ANN, BOB])
        delivery = make_delivery(job, headers={headers.RECIPIENTS: json.dumps([BOB])})
        rig = Rig()
        rig.handle(delivery)

        assert [[BOB]] == rig.recipients.reads[0].per_job
        assert [[BOB]] == rig.transport.recipients_sent

    def test_a_transient_refusal_goes_to_a_delay_tier(self) -> None:
        rig = Rig(refuse_some({BOB: BUSY}))
        rig.handle(make_delivery(make_job(1, to=[ANN, BOB])))

        [retry] = rig.publisher.to(DELAY)
        assert json.dumps([BOB]) == retry.headers[headers.RECIPIENTS]
        assert [("job-1", [ANN])] == rig.ledger.marks
        assert ["mark job-1", "publish unit.delay", "ack 1"] == rig.journal


class TestScreened:
    def test_invalid_json_is_dead_lettered_and_the_rest_of_the_batch_sent(self) -> None:
        rig = Rig()
        rig.handle(make_delivery(b"{not json", tag=1), make_delivery(make_job(2), tag=2))

        assert ["invalid"] == rig.reasons()
        assert [1, 2] == rig.acked
        assert [["rcpt2@example.org"]] == rig.transport.recipients_sent
        assert ["job-2"] == rig.recipients.reads[0].job_ids

    def test_an_unknown_message_type_is_invalid(self) -> None:
        rig = Rig()
        rig.handle(make_delivery(make_job(1), message_type="something.else.v9"))

        [letter] = rig.publisher.to(DLX)
        assert "invalid" == letter.headers[headers.REASON]
        assert "something.else.v9" in letter.headers[headers.ERROR]
        assert [] == rig.recipients.reads  # nothing left to read for
        assert [] == rig.transport.sends

    def test_a_job_not_yet_due_is_deferred_unsent(self) -> None:
        soon = (datetime.now(UTC) + timedelta(minutes=10)).isoformat()
        rig = Rig()
        rig.handle(make_delivery(make_job(1, not_before=soon)))

        [waiting] = rig.publisher.to(DELAY)
        assert "30s" == waiting.headers[headers.TIER]
        assert 1 == waiting.headers[headers.ATTEMPT]
        assert [1] == rig.acked
        assert [] == rig.transport.sends

    def test_a_job_whose_time_has_come_is_sent(self) -> None:
        past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
        rig = Rig()
        rig.handle(make_delivery(make_job(1, not_before=past)))

        assert 1 == len(rig.transport.sends)
        assert [] == rig.publisher.published

    def test_a_message_at_the_crash_limit_is_dead_lettered_crashed_unread(self) -> None:
        rig = Rig()
        rig.handle(
            make_delivery(make_job(1), tag=1, headers={"x-delivery-count": 5}),
            make_delivery(b"{not json", tag=2, headers={"x-delivery-count": 7}),
            make_delivery(make_job(3), tag=3, headers={"x-delivery-count": 4}),
        )

        assert ["crashed", "crashed"] == rig.reasons()
        assert [["rcpt3@example.org"]] == rig.transport.recipients_sent
        assert [1, 2, 3] == rig.acked


class TestNothingToSend:
    def test_a_job_sent_to_everyone_already_is_acked_as_a_duplicate(self) -> None:
        rig = Rig(recipients=FakeRecipients(sent={"job-1": {"rcpt1@example.org"}}))
        rig.handle(make_delivery(make_job(1)))

        assert [] == rig.transport.sends
        assert ([], []) == (rig.publisher.published, rig.ledger.marks)
        assert [1] == rig.acked
        assert 1 == rig.count("mailfleet_jobs_total", outcome="duplicate", lane="transactional")

    def test_recipients_sent_already_are_left_out(self) -> None:
        rig = Rig(recipients=FakeRecipients(sent={"job-1": {ANN}}))
        rig.handle(make_delivery(make_job(1, to=[ANN, BOB])))

        assert [[BOB]] == rig.transport.recipients_sent

    def test_a_job_whose_every_recipient_is_suppressed_is_dead_lettered(self) -> None:
        rig = Rig(recipients=FakeRecipients(suppressed={"rcpt1@example.org"}))
        rig.handle(make_delivery(make_job(1)))

        assert ["suppressed"] == rig.reasons()
        assert [] == rig.transport.sends
        assert [1] == rig.acked

    def test_suppressed_recipients_are_left_out_and_dead_lettered_alongside(self) -> None:
        rig = Rig(recipients=FakeRecipients(suppressed={BOB}))
        rig.handle(make_delivery(make_job(1, to=[ANN, "Bob@Example.net"])))

        assert [[ANN]] == rig.transport.recipients_sent
        [letter] = rig.publisher.to(DLX)
        assert "suppressed" == letter.headers[headers.REASON]
        assert json.dumps(["Bob@Example.net"]) == letter.headers[headers.RECIPIENTS]
        assert [1] == rig.acked

    def test_twins_in_one_batch_are_sent_once(self) -> None:
        job = make_job(1, to=[ANN, BOB])
        rig = Rig()
        rig.handle(make_delivery(job, tag=1), make_delivery(make_job(2), tag=2))
        rig.handle(make_delivery(job, tag=3), make_delivery(job, tag=4))

        assert [[ANN, BOB], ["rcpt2@example.org"], [ANN, BOB]] == rig.transport.recipients_sent
        assert [1, 2, 3, 4] == rig.acked  # the twin 4: a duplicate of 3
        assert 1 == rig.count("mailfleet_jobs_total", outcome="duplicate", lane="transactional")

    def test_a_twin_sends_only_what_its_twin_did_not_get_through(self) -> None:
        job = make_job(1, to=[ANN, BOB])
        rig = Rig(refuse_some({BOB: BUSY}))
        rig.handle(make_delivery(job, tag=1), make_delivery(job, tag=2))

        assert [[ANN, BOB], [BOB]] == rig.transport.recipients_sent


class TestGivenBack:
    def test_stopping_while_waiting_for_tokens_requeues_the_delivery(self) -> None:
        settings = Settings(namespace="unit", rate_limit=Rate.parse("10/s"))
        rig = Rig(
            settings=settings,
            limiter=FakeLimiter(settings),
            recipients=FakeRecipients(lease_answers=[raw_grant(False, 100_000, 1)]),
        )
        rig.stopping.set()
        rig.handle(make_delivery(make_job(1)))

        assert ([1], []) == (rig.requeued, rig.acked)
        assert [] == rig.transport.sends

    def test_a_delivery_parked_for_a_busy_domain_is_left_unsettled(self) -> None:
        settings = Settings(namespace="unit", domain_limits={"slow.example": Rate.parse("1/s")})
        limiter = FakeLimiter(settings)
        job = make_job(1, to=["ann@slow.example"])
        [bucket] = limiter.buckets_for(job, job.recipients())
        limiter.grants.append(TokenGrant(False, 5.0, blocking=bucket))
        rig = Rig(
            settings=settings,
            limiter=limiter,
            recipients=FakeRecipients(lease_answers=[raw_grant(False, 900_000, 1)]),
        )
        rig.inbox.put(make_delivery(make_job(9), tag=9))  # other work this thread can do
        rig.handle(make_delivery(job))

        assert ([], [], []) == (rig.acked, rig.requeued, rig.transport.sends)
        assert 2 == rig.inbox.waiting

    def test_a_stale_delivery_is_neither_acked_nor_requeued(self) -> None:
        rig = Rig(is_current=lambda delivery: delivery.generation == 2)
        rig.handle(make_delivery(make_job(1), tag=1, generation=1))

        assert ([], [], []) == (rig.acked, rig.requeued, rig.transport.sends)
        assert [] == rig.publisher.published

    def test_redis_away_while_stopping_requeues_every_job(self) -> None:
        rig = Rig(recipients=FakeRecipients(fail=RedisUnavailable("down")))
        rig.stopping.set()
        rig.handle(
            make_delivery(b"[]", tag=1),
            make_delivery(make_job(2), tag=2),
            make_delivery(make_job(3), tag=3),
        )

        assert ["invalid"] == rig.reasons()  # settled before the read, which never came
        assert [1] == rig.acked
        assert [2, 3] == rig.requeued
        assert [] == rig.transport.sends

    def test_a_send_that_raises_requeues_that_job_and_the_batch_goes_on(self) -> None:
        rig = Rig(RuntimeError("bug in the transport"))
        rig.handle(*batch(make_job(1), make_job(2)))

        assert [1] == rig.requeued
        assert [2] == rig.acked
        assert 2 == len(rig.transport.sends)

    def test_a_republish_that_fails_requeues_the_job(self) -> None:
        rig = Rig(refuse_all(BUSY))
        rig.publisher.fail = PublishNacked("nacked", ["job-1"])
        rig.handle(make_delivery(make_job(1)))

        assert ([1], []) == (rig.requeued, rig.acked)


class TestLeases:
    settings = Settings(namespace="unit", rate_limit=Rate.parse("10/s"))

    def test_a_batch_s_tokens_are_taken_with_its_read_and_not_again(self) -> None:
        rig = Rig(settings=self.settings, limiter=FakeLimiter(self.settings))
        rig.handle(*batch(make_job(1), make_job(2)))

        [read] = rig.recipients.reads
        [call] = read.calls
        assert 2 == call.args[-1]
        assert rig.limiter is not None
        assert [] == rig.limiter.takes
        assert [1, 2] == rig.acked

    def test_jobs_without_a_lease_take_their_tokens_on_their_turn(self) -> None:
        rig = Rig(
            settings=self.settings,
            limiter=FakeLimiter(self.settings),
            recipients=FakeRecipients(lease_answers=[raw_grant(False, 10_000, 1)]),
        )
        rig.handle(*batch(make_job(1), make_job(2)))

        assert rig.limiter is not None
        assert 1 == len(rig.limiter.takes_many)  # the group refused: one by one, granted
        assert [] == rig.limiter.takes
        assert [1, 2] == rig.acked

    def test_twins_lease_no_tokens(self) -> None:
        job = make_job(1)
        rig = Rig(settings=self.settings, limiter=FakeLimiter(self.settings))
        rig.handle(
            make_delivery(job, tag=1), make_delivery(job, tag=2), make_delivery(make_job(3), tag=3)
        )

        assert 1 == rig.recipients.reads[0].calls[0].args[-1]  # only job-3's
        assert rig.limiter is not None
        assert 1 == len(rig.limiter.takes)  # the first twin, on its turn
        assert [1, 2, 3] == rig.acked


class TestChained:
    def test_the_next_job_is_chained_behind_the_one_before_on_the_same_relay(self) -> None:
        rig = Rig(pipelining=True)
        rig.handle(*batch(make_job(1), make_job(2), make_job(3)))

        sends = rig.transport.sends
        assert [["rcpt1@example.org"], ["rcpt2@example.org"], ["rcpt3@example.org"]] == (
            rig.transport.recipients_sent
        )
        assert sends[1].envelope is sends[0].then
        assert sends[2].envelope is sends[1].then
        assert sends[2].then is None
        assert [1, 2, 3] == rig.acked

    def test_a_twin_is_never_chained(self) -> None:
        job = make_job(1, to=[ANN])
        rig = Rig(pipelining=True)
        rig.handle(make_delivery(job, tag=1), make_delivery(job, tag=2))

        assert [None] == [sent.then for sent in rig.transport.sends]
        assert [1, 2] == rig.acked

    def test_a_job_with_nobody_left_is_not_chained_and_still_settled(self) -> None:
        rig = Rig(pipelining=True, recipients=FakeRecipients(sent={"job-2": {"rcpt2@example.org"}}))
        rig.handle(*batch(make_job(1), make_job(2), make_job(3)))

        assert [["rcpt1@example.org"], ["rcpt3@example.org"]] == rig.transport.recipients_sent
        assert rig.transport.sends[0].then is None
        assert [1, 2, 3] == sorted(rig.acked)  # the duplicate settled when looked ahead at


def test_a_failure_settling_the_next_job_costs_the_current_one_nothing() -> None:
    """Job 2 (all suppressed) is looked at while job 1 is being sent, to chain it; its dead
    letter fails. Job 1 should still be sent and acked; job 2 requeued."""
    rig = Rig(pipelining=True, recipients=FakeRecipients(suppressed={"rcpt2@example.org"}))
    rig.publisher.fail = PublishNacked("nacked", ["job-2"])
    rig.handle(make_delivery(make_job(1), tag=1), make_delivery(make_job(2), tag=2))
    assert [["rcpt1@example.org"]] == rig.transport.recipients_sent
    assert [1] == rig.acked
    assert [2] == rig.requeued
