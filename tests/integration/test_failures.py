"""Failures that heal themselves: retries through delay tiers, dead letters with reasons,
suppression, per-recipient settlement and idempotent sends, on the real servers."""

from __future__ import annotations

import json
import subprocess
import time
from datetime import UTC, datetime, timedelta

import redis
from kombu.connection import Connection

from mailfleet.producer.devtools.sink import SmtpSink
from mailfleet.producer.publisher import Producer
from mailfleet.shared.settings import Settings
from mailfleet.shared.suppression import SuppressionList
from tests.integration.helpers import (
    DeliveryLedger,
    WorkerThread,
    drain_dead_letters,
    mailfleet_command,
    make_job,
    settings_env,
)
from tests.integration.relays import ScriptedReplies

TRY_LATER = "451 4.3.0 Temporary local problem, try later"
NO_SUCH_USER = "550 5.1.1 No such user here"


def _run_until_drained(settings: Settings) -> WorkerThread:
    worker = WorkerThread(settings, burst=True)
    assert 0 == worker.join(timeout=60)
    return worker


class TestRetries:
    def test_two_4xx_then_250_is_delivered_on_the_third_attempt(
        self,
        settings: Settings,
        producer: Producer,
        smtp_server: SmtpSink,
        replies: ScriptedReplies,
        amqp_connection: Connection,
    ) -> None:
        """451, 451, 250: delivered once, after one retry in each delay tier, no dead letter."""
        replies.script("rcpt1@example.org", TRY_LATER, TRY_LATER, None)
        producer.publish(make_job(1))

        worker = _run_until_drained(settings)

        assert 3 == replies.seen["rcpt1@example.org"]
        assert ["job-1"] == [message.job_id for message in smtp_server.messages]
        registry = worker.worker.metrics.registry
        assert 1 == registry.get_sample_value("mailfleet_retries_total", {"tier": "300ms"})
        assert 1 == registry.get_sample_value("mailfleet_retries_total", {"tier": "600ms"})
        assert [] == drain_dead_letters(amqp_connection, settings)

    def test_attempts_exhausted_are_dead_lettered_with_the_last_reply(
        self,
        settings: Settings,
        producer: Producer,
        smtp_server: SmtpSink,
        replies: ScriptedReplies,
        amqp_connection: Connection,
    ) -> None:
        """Always 451: after MAX_ATTEMPTS the job is dead-lettered `exhausted`."""
        replies.script("rcpt1@example.org", TRY_LATER)
        producer.publish(make_job(1))

        _run_until_drained(settings)

        [letter] = drain_dead_letters(amqp_connection, settings)
        assert ("job-1", "exhausted") == (letter.job_id, letter.reason)
        assert settings.max_attempts == letter.headers["x-mailfleet-attempts"]
        assert letter.error.startswith("451 4.3.0")
        assert 0 == smtp_server.count

    def test_a_job_not_before_a_future_time_waits_for_it(
        self, settings: Settings, producer: Producer, smtp_server: SmtpSink
    ) -> None:
        """A job with not_before 1.5 s ahead arrives no earlier, without using an attempt."""
        not_before = datetime.now(UTC) + timedelta(seconds=1.5)
        producer.publish(make_job(1, not_before=not_before.isoformat()))

        _run_until_drained(settings)

        [message] = smtp_server.messages
        assert message.received_at >= not_before.timestamp()


class TestPermanentFailures:
    def test_a_bad_mailbox_is_dead_lettered_and_suppressed(
        self,
        settings: Settings,
        producer: Producer,
        smtp_server: SmtpSink,
        replies: ScriptedReplies,
        amqp_connection: Connection,
        redis_client: redis.Redis,
    ) -> None:
        """550 5.1.1: dead-lettered `permanent` with the reply, and the address suppressed."""
        replies.script("rcpt1@example.org", NO_SUCH_USER)
        producer.publish(make_job(1))

        _run_until_drained(settings)

        [letter] = drain_dead_letters(amqp_connection, settings)
        assert ("job-1", "permanent", NO_SUCH_USER) == (letter.job_id, letter.reason, letter.error)
        assert "transactional" == letter.headers["x-mailfleet-lane"]
        assert letter.headers["x-mailfleet-failed-at"]
        suppression = SuppressionList(redis_client, settings.names)
        assert ["rcpt1@example.org"] == [entry.address for entry in suppression.entries()]

    def test_a_suppressed_address_is_never_sent_to(
        self,
        settings: Settings,
        producer: Producer,
        smtp_server: SmtpSink,
        amqp_connection: Connection,
        redis_client: redis.Redis,
    ) -> None:
        """A job whose only recipient is suppressed is dead-lettered `suppressed`, not sent."""
        SuppressionList(redis_client, settings.names).add("rcpt1@example.org", "550 5.1.1")
        producer.publish_many([make_job(1), make_job(2)])

        _run_until_drained(settings)

        assert ["job-2"] == [message.job_id for message in smtp_server.messages]
        [letter] = drain_dead_letters(amqp_connection, settings)
        assert ("job-1", "suppressed") == (letter.job_id, letter.reason)

    def test_a_suppressed_recipient_among_others_is_dead_lettered_alone(
        self,
        settings: Settings,
        producer: Producer,
        smtp_server: SmtpSink,
        amqp_connection: Connection,
        redis_client: redis.Redis,
    ) -> None:
        """The others get the email; the suppressed one gets a `suppressed` dead letter."""
        SuppressionList(redis_client, settings.names).add("gone@example.org", "550 5.1.1")
        producer.publish(make_job(1, to=["gone@example.org", "here@example.org"]))

        _run_until_drained(settings)

        [message] = smtp_server.messages
        assert ("here@example.org",) == message.rcpt_tos
        [letter] = drain_dead_letters(amqp_connection, settings)
        assert "suppressed" == letter.reason
        assert ["gone@example.org"] == json.loads(letter.headers["x-mailfleet-recipients"])


class TestPerRecipientSettlement:
    def test_one_bad_recipient_does_not_hold_back_the_others(
        self,
        settings: Settings,
        producer: Producer,
        smtp_server: SmtpSink,
        replies: ScriptedReplies,
        amqp_connection: Connection,
    ) -> None:
        """Good recipients get the email once; the bad one alone is dead-lettered."""
        replies.script("bad@example.org", NO_SUCH_USER)
        producer.publish(
            make_job(1, to=["good1@example.org", "bad@example.org"], cc=["good2@example.net"])
        )

        _run_until_drained(settings)

        [message] = smtp_server.messages
        assert ("good1@example.org", "good2@example.net") == message.rcpt_tos
        [letter] = drain_dead_letters(amqp_connection, settings)
        assert "permanent" == letter.reason
        assert ["bad@example.org"] == json.loads(letter.headers["x-mailfleet-recipients"])

    def test_any_2xx_to_rcpt_counts_as_accepted(
        self,
        settings: Settings,
        producer: Producer,
        smtp_server: SmtpSink,
        replies: ScriptedReplies,
        amqp_connection: Connection,
    ) -> None:
        """A relay answering 252 takes the recipient: sent once, never retried."""
        replies.script("maybe@example.org", "252 2.1.5 Cannot verify, will attempt delivery")
        producer.publish(make_job(1, to=["maybe@example.org", "sure@example.org"]))

        _run_until_drained(settings)

        [message] = smtp_server.messages
        assert ("maybe@example.org", "sure@example.org") == message.rcpt_tos
        assert 1 == replies.seen["maybe@example.org"]
        assert [] == drain_dead_letters(amqp_connection, settings)

    def test_a_transient_recipient_is_retried_alone(
        self,
        settings: Settings,
        producer: Producer,
        smtp_server: SmtpSink,
        replies: ScriptedReplies,
    ) -> None:
        """451 for one of two recipients: the other is not sent the email a second time."""
        replies.script("slow@example.org", TRY_LATER, None)
        producer.publish(make_job(1, to=["fast@example.org", "slow@example.org"]))

        _run_until_drained(settings)

        assert [("fast@example.org",), ("slow@example.org",)] == [
            message.rcpt_tos for message in smtp_server.messages
        ]


class TestIdempotentSends:
    def test_a_job_published_twice_is_sent_once(
        self, settings: Settings, producer: Producer, smtp_server: SmtpSink
    ) -> None:
        """The second copy of a job id is acked and counted as a duplicate, not sent."""
        producer.publish(make_job(7))
        first = _run_until_drained(settings)
        producer.publish(make_job(7))
        second = _run_until_drained(settings)

        ledger = DeliveryLedger(confirmed={"job-7"})
        ledger.record_relay(smtp_server)
        assert {} == ledger.duplicates
        assert 1 == smtp_server.count
        labels = {"outcome": "duplicate", "lane": "transactional"}
        assert first.worker.metrics.registry.get_sample_value("mailfleet_jobs_total", labels) in (
            None,
            0.0,
        )
        assert 1 == second.worker.metrics.registry.get_sample_value("mailfleet_jobs_total", labels)

    def test_delivered_recipients_are_skipped_after_a_redelivery(
        self,
        settings: Settings,
        producer: Producer,
        smtp_server: SmtpSink,
        redis_client: redis.Redis,
    ) -> None:
        """A recipient already in the sent ledger for this id is left out of the resend."""
        redis_client.hset(settings.names.sent_ledger("job-3"), "a@example.org", str(time.time()))
        producer.publish(make_job(3, to=["a@example.org", "b@example.org"]))

        _run_until_drained(settings)

        [message] = smtp_server.messages
        assert ("b@example.org",) == message.rcpt_tos


class TestReplayAfterTheRelayIsFixed:
    def test_exhausted_then_replayed_is_delivered_and_the_dead_letter_queue_empties(
        self,
        settings: Settings,
        producer: Producer,
        smtp_server: SmtpSink,
        replies: ScriptedReplies,
        amqp_connection: Connection,
    ) -> None:
        """451 until exhausted; the relay is fixed; `mailfleet dlq replay`; delivered once."""
        replies.script("rcpt1@example.org", TRY_LATER)
        producer.publish(make_job(1))
        _run_until_drained(settings)
        assert 0 == smtp_server.count

        replies.script("rcpt1@example.org", None)
        replay = subprocess.run(
            mailfleet_command("dlq", "replay", "--reason", "exhausted"),
            env=settings_env(settings),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert 0 == replay.returncode, replay.stderr
        assert "replayed 1" in replay.stdout
        _run_until_drained(settings)

        assert ["job-1"] == [message.job_id for message in smtp_server.messages]
        assert [] == drain_dead_letters(amqp_connection, settings)
