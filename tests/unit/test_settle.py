"""The Settler: what becomes of a delivery once the relay answered (or it never got there):
marked sent and acked, retried through a delay tier, or dead-lettered with its reason, each
republish made before the original is acked."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from mailfleet.shared import names as headers
from mailfleet.shared.errors import PublishNacked, RedisUnavailable
from mailfleet.shared.events import Event, EventKind
from mailfleet.shared.job import EmailJob, Lane
from mailfleet.shared.settings import Settings
from mailfleet.worker.events import EventRecorder
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
    Published,
    make_delivery,
    make_job,
)

SETTINGS = Settings(
    namespace="unit", retry_delays=[5.0, 30.0, 120.0], max_attempts=3, max_age=3600.0
)
DELAY = "unit.delay"
DLX = "unit.dlx"
ANN, BOB, CY = "ann@example.org", "bob@example.net", "cy@example.com"

BUSY = SmtpReply(450, "4.2.0 mailbox busy")
NO_USER = SmtpReply(550, "5.1.1 no such user")
POLICY = SmtpReply(550, "5.7.1 refused by policy")
SLOW_DOWN = SmtpReply(421, "4.7.0 too many messages, slow down")


@dataclass
class Rig:
    journal: Journal = field(default_factory=list)
    suppression: FakeSuppressor = field(default_factory=FakeSuppressor)
    adaptive: FakeAdaptive = field(default_factory=FakeAdaptive)
    metrics: WorkerMetrics = field(default_factory=WorkerMetrics)
    events: EventRecorder = field(default_factory=EventRecorder)

    def __post_init__(self) -> None:
        self.acker = FakeAcker(self.journal)
        self.publisher = FakePublisher(self.journal)
        self.ledger = FakeLedger(self.journal)
        self.settler = Settler(
            settings=SETTINGS,
            acker=self.acker,
            publisher=self.publisher,
            ledger=self.ledger,
            suppression=self.suppression,
            metrics=self.metrics,
            adaptive=self.adaptive,
            events=self.events,
        )

    def settle(
        self,
        delivery: Delivery,
        job: EmailJob,
        result: SendResult,
        suppressed: list[str] | None = None,
    ) -> None:
        self.settler.settle(delivery, job, result, time.monotonic(), suppressed=suppressed)

    def count(self, name: str, **labels: str) -> float:
        return self.metrics.registry.get_sample_value(name, labels) or 0.0

    def only(self, exchange: str) -> Published:
        """The one message published, which went to ``exchange``."""
        assert [exchange] == [message.exchange for message in self.publisher.published]
        return self.publisher.published[0]


@pytest.fixture
def rig() -> Rig:
    return Rig()


def three() -> EmailJob:
    return make_job(7, to=[ANN, BOB], cc=[CY])


def refused(reply: SmtpReply, *recipients: str, accepted: tuple[str, ...] = ()) -> SendResult:
    return SendResult("relay:25", accepted=list(accepted), refused=dict.fromkeys(recipients, reply))


def listed(message: Published) -> list[str] | None:
    """The recipients a republished message is for, when fewer than all."""
    value = message.headers.get(headers.RECIPIENTS)
    return None if value is None else list(json.loads(value))


class TestDelivered:
    def test_all_accepted_marks_the_ledger_acks_and_counts(self, rig: Rig) -> None:
        job = three()
        delivery = make_delivery(job)
        rig.settle(delivery, job, SendResult("relay:25", accepted=[ANN, BOB, CY]))

        assert [(job.id, [ANN, BOB, CY])] == rig.ledger.marks
        assert [delivery] == rig.acker.acked
        assert [] == rig.publisher.published
        assert ["mark job-7", "ack 1"] == rig.journal  # marked before the ack
        assert 1 == rig.count("mailfleet_jobs_total", outcome="delivered", lane="transactional")
        assert 3 == rig.count("mailfleet_smtp_replies_total", code="250")
        assert ["example.com", "example.net", "example.org"] == sorted(
            rig.adaptive.succeeded_domains
        )

    def test_a_ledger_that_fails_after_the_relay_accepted_still_acks(self, rig: Rig) -> None:
        """The email went out: acking is right even when its sent mark could not be written."""
        rig.ledger.fail = RedisUnavailable("down")
        job = make_job(1)
        delivery = make_delivery(job)
        rig.settle(delivery, job, SendResult("relay:25", accepted=job.recipients()))

        assert [delivery] == rig.acker.acked
        assert [] == rig.publisher.published
        assert 1 == rig.count("mailfleet_jobs_total", outcome="delivered", lane="transactional")

    def test_a_ledger_failure_does_not_stop_the_refused_from_being_retried(self, rig: Rig) -> None:
        rig.ledger.fail = RedisUnavailable("down")
        job = three()
        delivery = make_delivery(job)
        rig.settle(delivery, job, refused(BUSY, CY, accepted=(ANN, BOB)))

        assert [CY] == listed(rig.only(DELAY))
        assert [delivery] == rig.acker.acked

    def test_duplicate_is_acked_without_a_send_or_publish(self, rig: Rig) -> None:
        job = make_job(1, lane="bulk")
        delivery = make_delivery(job)
        rig.settler.duplicate(delivery, job, job.recipients())

        assert [delivery] == rig.acker.acked
        assert ([], []) == (rig.publisher.published, rig.ledger.marks)
        assert 1 == rig.count("mailfleet_jobs_total", outcome="duplicate", lane="bulk")


class TestTransient:
    def test_4xx_goes_to_the_delay_tier_of_its_attempt_then_the_original_is_acked(
        self, rig: Rig
    ) -> None:
        job = make_job(1)
        delivery = make_delivery(job, tag=4)
        rig.settle(delivery, job, refused(BUSY, *job.recipients()))

        retry = rig.only(DELAY)
        assert "transactional" == retry.routing_key
        assert 2 == retry.headers[headers.ATTEMPT]
        assert "5s" == retry.headers[headers.TIER]
        assert "transactional" == retry.headers[headers.LANE]
        assert headers.RECIPIENTS not in retry.headers  # all of them: no list
        assert delivery.body == retry.body
        assert ["publish unit.delay", "ack 4"] == rig.journal
        assert 1 == rig.count("mailfleet_retries_total", tier="5s")
        assert 1 == rig.count("mailfleet_jobs_total", outcome="retried", lane="transactional")
        assert 1 == rig.count("mailfleet_smtp_replies_total", code="450")

    def test_the_republished_message_keeps_its_identity_and_is_persistent(self, rig: Rig) -> None:
        job = make_job(1)
        delivery = make_delivery(job, timestamp=int(time.time()) - 60)
        rig.settle(delivery, job, refused(BUSY, *job.recipients()))

        properties = rig.only(DELAY).properties
        original = delivery.properties
        assert (original.message_id, original.timestamp) == (
            properties.message_id,
            properties.timestamp,
        )
        assert (original.type, original.content_type) == (properties.type, properties.content_type)
        assert 2 == properties.delivery_mode

    def test_a_later_attempt_waits_the_next_tier(self, rig: Rig) -> None:
        job = make_job(1)
        delivery = make_delivery(job, headers={headers.ATTEMPT: 2})
        rig.settle(delivery, job, refused(BUSY, *job.recipients()))

        retry = rig.only(DELAY)
        assert (3, "30s") == (retry.headers[headers.ATTEMPT], retry.headers[headers.TIER])

    def test_headers_the_broker_added_are_dropped_and_the_job_s_own_kept(self, rig: Rig) -> None:
        job = make_job(1)
        delivery = make_delivery(
            job,
            headers={
                "x-death": [{"queue": "unit.delay.5s"}],
                "x-first-death-queue": "unit.delay.5s",
                "x-last-death-reason": "expired",
                "x-delivery-count": 3,
                "x-app-trace": "abc",
            },
        )
        rig.settle(delivery, job, refused(BUSY, *job.recipients()))

        kept = rig.only(DELAY).headers
        assert "abc" == kept["x-app-trace"]
        assert not [name for name in kept if name.startswith(("x-death", "x-first-", "x-last-"))]
        assert "x-delivery-count" not in kept

    def test_the_last_attempt_is_dead_lettered_exhausted(self, rig: Rig) -> None:
        job = make_job(1)
        delivery = make_delivery(job, headers={headers.ATTEMPT: 3})
        rig.settle(delivery, job, refused(BUSY, *job.recipients()))

        letter = rig.only(DLX)
        assert "transactional" == letter.routing_key
        assert "exhausted" == letter.headers[headers.REASON]
        assert "450 4.2.0 mailbox busy" == letter.headers[headers.ERROR]
        assert 3 == letter.headers[headers.ATTEMPTS]
        assert "transactional" == letter.headers[headers.LANE]
        failed_at = datetime.fromisoformat(letter.headers[headers.FAILED_AT])
        assert abs(datetime.now(UTC) - failed_at) < timedelta(seconds=5)
        assert [delivery] == rig.acker.acked
        assert 1 == rig.count("mailfleet_dead_letters_total", reason="exhausted")
        assert 0 == rig.count("mailfleet_retries_total", tier="2m")

    def test_a_job_older_than_the_max_age_is_exhausted_at_its_first_attempt(self, rig: Rig) -> None:
        job = make_job(1)
        delivery = make_delivery(job, timestamp=int(time.time()) - 3700)
        rig.settle(delivery, job, refused(BUSY, *job.recipients()))

        assert "exhausted" == rig.only(DLX).headers[headers.REASON]

    def test_a_throttling_reply_slows_its_domain_down_once(self, rig: Rig) -> None:
        job = make_job(1, to=["a@slow.example", "b@slow.example", ANN])
        rig.settle(
            make_delivery(job),
            job,
            refused(SLOW_DOWN, "a@slow.example", "b@slow.example", accepted=(ANN,)),
        )

        assert ["slow.example"] == rig.adaptive.throttled_domains
        assert ["example.org"] == rig.adaptive.succeeded_domains
        assert ["a@slow.example", "b@slow.example"] == listed(rig.only(DELAY))

    def test_an_error_longer_than_the_header_limit_is_cut(self, rig: Rig) -> None:
        job = make_job(1)
        delivery = make_delivery(job, headers={headers.ATTEMPT: 3})
        rig.settle(delivery, job, refused(SmtpReply(451, "x" * 5000), *job.recipients()))

        assert 1000 == len(rig.only(DLX).headers[headers.ERROR])


class TestPermanent:
    def test_5xx_is_dead_lettered_permanent_and_a_bad_mailbox_suppressed(self, rig: Rig) -> None:
        job = make_job(1)
        delivery = make_delivery(job)
        rig.settle(delivery, job, refused(NO_USER, "rcpt1@example.org"))

        letter = rig.only(DLX)
        assert "permanent" == letter.headers[headers.REASON]
        assert "550 5.1.1 no such user" == letter.headers[headers.ERROR]
        assert 1 == letter.headers[headers.ATTEMPTS]
        assert [("rcpt1@example.org", "550 5.1.1 no such user")] == rig.suppression.added
        assert [delivery] == rig.acker.acked
        assert 1 == rig.count("mailfleet_dead_letters_total", reason="permanent")

    def test_a_policy_refusal_is_permanent_but_the_address_is_not_suppressed(
        self, rig: Rig
    ) -> None:
        job = make_job(1)
        rig.settle(make_delivery(job), job, refused(POLICY, "rcpt1@example.org"))

        assert "permanent" == rig.only(DLX).headers[headers.REASON]
        assert [] == rig.suppression.added

    def test_a_suppression_list_that_fails_still_dead_letters_and_acks(self, rig: Rig) -> None:
        rig.suppression.fail = RedisUnavailable("down")
        job = make_job(1)
        delivery = make_delivery(job)
        rig.settle(delivery, job, refused(NO_USER, "rcpt1@example.org"))

        assert "permanent" == rig.only(DLX).headers[headers.REASON]
        assert [delivery] == rig.acker.acked


class TestPartial:
    def test_the_retry_names_only_the_refused(self, rig: Rig) -> None:
        job = three()
        rig.settle(make_delivery(job), job, refused(BUSY, BOB, accepted=(ANN, CY)))

        assert [(job.id, [ANN, CY])] == rig.ledger.marks
        assert [BOB] == listed(rig.only(DELAY))

    def test_each_recipient_is_settled_on_its_own(self, rig: Rig) -> None:
        """One accepted, one permanent, one transient: marked, dead-lettered, retried; one ack."""
        job = three()
        delivery = make_delivery(job)
        result = SendResult("relay:25", accepted=[ANN], refused={BOB: NO_USER, CY: BUSY})
        rig.settle(delivery, job, result)

        assert [(job.id, [ANN])] == rig.ledger.marks
        [letter] = rig.publisher.to(DLX)
        [retry] = rig.publisher.to(DELAY)
        assert ("permanent", [BOB]) == (letter.headers[headers.REASON], listed(letter))
        assert [CY] == listed(retry)
        assert [(BOB, str(NO_USER))] == rig.suppression.added
        assert ["mark job-7", "publish unit.dlx", "publish unit.delay", "ack 1"] == rig.journal

    def test_a_retry_of_a_retry_keeps_naming_who_is_left(self, rig: Rig) -> None:
        job = three()
        delivery = make_delivery(
            job, headers={headers.ATTEMPT: 2, headers.RECIPIENTS: json.dumps([BOB, CY])}
        )
        rig.settle(delivery, job, refused(BUSY, BOB, CY))

        retry = rig.only(DELAY)
        assert [BOB, CY] == listed(retry)
        assert 3 == retry.headers[headers.ATTEMPT]

    def test_once_every_recipient_is_refused_again_the_list_is_dropped(self, rig: Rig) -> None:
        job = three()
        delivery = make_delivery(job, headers={headers.RECIPIENTS: json.dumps([ANN, BOB, CY])})
        rig.settle(delivery, job, refused(BUSY, ANN, BOB, CY))

        assert listed(rig.only(DELAY)) is None

    def test_recipients_left_out_as_suppressed_are_dead_lettered_alongside(self, rig: Rig) -> None:
        job = three()
        delivery = make_delivery(job)
        rig.settle(delivery, job, SendResult("relay:25", accepted=[ANN, BOB]), suppressed=[CY])

        letter = rig.only(DLX)
        assert "suppressed" == letter.headers[headers.REASON]
        assert f"on the suppression list: {CY}" == letter.headers[headers.ERROR]
        assert [CY] == listed(letter)
        assert [(job.id, [ANN, BOB])] == rig.ledger.marks
        assert [delivery] == rig.acker.acked


class TestNeverSent:
    def test_defer_waits_in_the_longest_tier_that_fits_without_using_an_attempt(
        self, rig: Rig
    ) -> None:
        job = make_job(1, lane="bulk")
        delivery = make_delivery(job, tag=2, headers={headers.ATTEMPT: 2})
        rig.settler.defer(delivery, job, 100.0)

        waiting = rig.only(DELAY)
        assert "bulk" == waiting.routing_key
        assert 2 == waiting.headers[headers.ATTEMPT]
        assert "30s" == waiting.headers[headers.TIER]
        assert ["publish unit.delay", "ack 2"] == rig.journal
        assert 1 == rig.count("mailfleet_jobs_total", outcome="deferred", lane="bulk")
        assert 0 == rig.count("mailfleet_retries_total", tier="30s")

    def test_defer_shorter_than_every_tier_waits_the_shortest(self, rig: Rig) -> None:
        job = make_job(1)
        rig.settler.defer(make_delivery(job), job, 1.0)

        assert "5s" == rig.only(DELAY).headers[headers.TIER]
        assert 1 == rig.only(DELAY).headers[headers.ATTEMPT]

    def test_crashed_is_dead_lettered_with_the_delivery_count(self, rig: Rig) -> None:
        job = make_job(1)
        delivery = make_delivery(job, headers={"x-delivery-count": 20})
        rig.settler.crashed(delivery)

        letter = rig.only(DLX)
        assert "crashed" == letter.headers[headers.REASON]
        assert "redelivered 20 times: it crashed the workers" == letter.headers[headers.ERROR]
        assert "x-delivery-count" not in letter.headers
        assert [delivery] == rig.acker.acked
        assert 1 == rig.count("mailfleet_dead_letters_total", reason="crashed")

    def test_invalid_is_dead_lettered_with_the_problem(self, rig: Rig) -> None:
        delivery = make_delivery(b"{not json", lane=Lane.BULK)
        rig.settler.invalid(delivery, "job: Invalid JSON")

        letter = rig.only(DLX)
        assert ("invalid", "job: Invalid JSON") == (
            letter.headers[headers.REASON],
            letter.headers[headers.ERROR],
        )
        assert ("bulk", b"{not json") == (letter.routing_key, letter.body)
        assert [delivery] == rig.acker.acked
        assert 1 == rig.count("mailfleet_jobs_total", outcome="dead_lettered", lane="bulk")

    def test_all_suppressed_is_dead_lettered_without_a_list(self, rig: Rig) -> None:
        job = make_job(1)
        delivery = make_delivery(job)
        rig.settler.suppressed(delivery, job, ["rcpt1@example.org"])

        letter = rig.only(DLX)
        assert "suppressed" == letter.headers[headers.REASON]
        assert listed(letter) is None
        assert [delivery] == rig.acker.acked
        assert 1 == rig.count("mailfleet_dead_letters_total", reason="suppressed")

    def test_some_suppressed_names_them(self, rig: Rig) -> None:
        job = three()
        rig.settler.suppressed(make_delivery(job), job, [BOB])

        assert [BOB] == listed(rig.only(DLX))

    def test_requeue_goes_straight_to_the_acker(self, rig: Rig) -> None:
        delivery = make_delivery(make_job(1))
        rig.settler.requeue(delivery)

        assert ([delivery], []) == (rig.acker.requeued, rig.acker.acked)
        assert [] == rig.publisher.published


class TestPublishFailure:
    def test_a_republish_that_fails_leaves_the_original_unacked(self, rig: Rig) -> None:
        """No ack without the confirm: the error reaches the caller, which requeues."""
        rig.publisher.fail = PublishNacked("nacked", ["job-1"])
        job = make_job(1)
        delivery = make_delivery(job)
        with pytest.raises(PublishNacked):
            rig.settle(delivery, job, refused(BUSY, *job.recipients()))
        assert [] == rig.acker.acked

    def test_a_dead_letter_that_fails_leaves_the_original_unacked(self, rig: Rig) -> None:
        rig.publisher.fail = PublishNacked("nacked", ["not-a-job"])
        with pytest.raises(PublishNacked):
            rig.settler.invalid(make_delivery(b"[]"), "job: not an object")
        assert [] == rig.acker.acked


def facts(events: list[Event]) -> list[tuple[str, str, str | None]]:
    """Each event as (kind, recipient, reason)."""
    return [(event.event.value, event.recipient, event.reason) for event in events]


class TestEvents:
    """What the Settler records for the batch's commit to publish: one event per fact and
    recipient (the recorder itself is tested in test_events.py)."""

    def test_each_recipient_s_outcome_is_one_event(self, rig: Rig) -> None:
        job = three()
        result = SendResult("relay:25", accepted=[ANN], refused={BOB: NO_USER, CY: BUSY})
        rig.settle(make_delivery(job), job, result)
        events = rig.events.take()

        assert [
            ("delivered", ANN, None),
            ("bounced", BOB, None),
            ("dead_lettered", BOB, "permanent"),
            ("deferred", CY, None),
        ] == facts(events)
        delivered, bounced, dead, deferred = events
        assert delivered.smtp is not None
        assert (250, "relay:25") == (delivered.smtp.code, delivered.relay)
        assert bounced.smtp is not None
        assert ("5.1.1", 550) == (bounced.smtp.enhanced, bounced.smtp.code)
        assert bounced.seq < dead.seq  # the bounce comes before the dead letter it causes
        assert deferred.smtp is not None
        assert 450 == deferred.smtp.code
        assert deferred.next_attempt_at is not None
        due = datetime.fromisoformat(deferred.next_attempt_at)
        assert timedelta(seconds=3) < due - datetime.now(UTC) <= timedelta(seconds=5)

    def test_an_exhausted_job_is_dead_lettered_without_a_deferral(self, rig: Rig) -> None:
        job = make_job(1)
        delivery = make_delivery(job, headers={headers.ATTEMPT: 3})
        rig.settle(delivery, job, refused(BUSY, *job.recipients()))

        [event] = rig.events.take()
        assert ("dead_lettered", "rcpt1@example.org", "exhausted") == facts([event])[0]
        assert 3 == event.attempt

    def test_suppressed_recipients_are_suppressed_and_dead_lettered(self, rig: Rig) -> None:
        job = three()
        rig.settle(make_delivery(job), job, SendResult("relay:25", accepted=[ANN, BOB]), [CY])

        assert [
            ("delivered", ANN, None),
            ("delivered", BOB, None),
            ("suppressed", CY, None),
            ("dead_lettered", CY, "suppressed"),
        ] == facts(rig.events.take())

    def test_a_duplicate_names_the_recipients_sent_before(self, rig: Rig) -> None:
        job = three()
        rig.settler.duplicate(make_delivery(job), job, [ANN, CY])

        assert [("duplicate_skipped", ANN, None), ("duplicate_skipped", CY, None)] == facts(
            rig.events.take()
        )

    def test_messages_never_sent_record_no_events(self, rig: Rig) -> None:
        """Crashed and invalid messages may have no job to name; a deferral is no outcome."""
        job = make_job(1)
        rig.settler.crashed(make_delivery(job, headers={"x-delivery-count": 20}))
        rig.settler.invalid(make_delivery(b"[]"), "job: not an object")
        rig.settler.defer(make_delivery(job), job, 60.0)

        assert [] == rig.events.take()
        assert 3 == len(rig.publisher.published)

    def test_the_events_kinds_are_the_contract_s(self, rig: Rig) -> None:
        job = make_job(1)
        rig.settle(make_delivery(job), job, SendResult("relay:25", accepted=job.recipients()))
        [event] = rig.events.take()
        assert EventKind.DELIVERED is event.event
        assert "delivered.transactional" == event.routing_key


def test_crashed_keeps_the_recipients_still_owed() -> None:
    """A retry that was for some recipients only, crashed out: the dead letter names them."""
    rig, job = Rig(), three()
    owed = {headers.RECIPIENTS: json.dumps([BOB]), "x-delivery-count": 20}
    rig.settler.crashed(make_delivery(job, headers=owed))
    assert [BOB] == listed(rig.only(DLX))


def test_defer_keeps_the_recipients_still_owed() -> None:
    rig, job = Rig(), three()
    owed = {headers.RECIPIENTS: json.dumps([BOB])}
    rig.settler.defer(make_delivery(job, headers=owed), job, 100)
    assert [BOB] == listed(rig.only(DELAY))
