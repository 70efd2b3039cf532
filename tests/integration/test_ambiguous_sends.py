"""Sends whose outcome is unknown: the in-flight mark the worker leaves before sending, and
MAILFLEET_AMBIGUOUS per lane (resend or hold), on real RabbitMQ, Redis and relay; then
SIGKILL mid-run, many times, with a relay slow to answer DATA, and the ledgers."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest
import redis
from kombu.connection import Connection

from mailfleet.producer.devtools.sink import SmtpSink
from mailfleet.producer.publisher import Producer
from mailfleet.shared.settings import Settings
from mailfleet.worker.inflight import inflight_key
from tests.integration.helpers import (
    DeliveryLedger,
    WorkerProcess,
    WorkerThread,
    drain_dead_letters,
    mailfleet_command,
    make_job,
    settings_env,
    wait_until,
)
from tests.integration.relays import ScriptedReplies

_LOST_AT = 1_700_000_000.0  # 2023-11-14T22:13:20Z, the time of the "lost" attempt
_KILLS = 6
_JOBS = 400


def _lose_an_attempt(client: redis.Redis, settings: Settings, job_id: str, rcpt: str) -> None:
    """What a worker killed during its send leaves: a mark of attempt 1 (round 0), made by
    a delivery of another process, and no sent mark."""
    key = inflight_key(settings.names, job_id)
    client.hset(key, rcpt, f"0.1|dead-worker.1.7|{_LOST_AT}")
    client.expire(key, 600)


def _hold(settings: Settings, **extra: object) -> Settings:
    policy = {"transactional": "hold", "bulk": "hold"}
    return settings.model_copy(update={"ambiguous": policy, **extra})


def _burst(settings: Settings) -> WorkerThread:
    worker = WorkerThread(settings, burst=True)
    assert 0 == worker.join(timeout=60)
    return worker


class TestPolicy:
    def test_hold_dead_letters_the_ambiguous_recipient_with_the_time_of_the_lost_attempt(
        self,
        settings: Settings,
        producer: Producer,
        smtp_server: SmtpSink,
        redis_client: redis.Redis,
        amqp_connection: Connection,
    ) -> None:
        """hold: job-1 (marked, not sent) is dead-lettered `ambiguous`, never sent; job-2 is
        sent; mailfleet_ambiguous_total{transactional,hold} is 1."""
        _lose_an_attempt(redis_client, settings, "job-1", "rcpt1@example.org")
        producer.publish_many([make_job(1), make_job(2)])

        worker = _burst(_hold(settings))

        assert ["job-2"] == [message.job_id for message in smtp_server.messages]
        [letter] = drain_dead_letters(amqp_connection, settings)
        assert ("job-1", "ambiguous") == (letter.job_id, letter.reason)
        assert "2023-11-14T22:13:20+00:00" in letter.error
        labels = {"lane": "transactional", "policy": "hold"}
        registry = worker.worker.metrics.registry
        assert 1 == registry.get_sample_value("mailfleet_ambiguous_total", labels)

    def test_resend_sends_again_and_counts_it(
        self,
        settings: Settings,
        producer: Producer,
        smtp_server: SmtpSink,
        redis_client: redis.Redis,
        amqp_connection: Connection,
    ) -> None:
        """The default (resend): job-1 is sent anyway, counted under policy resend."""
        _lose_an_attempt(redis_client, settings, "job-1", "rcpt1@example.org")
        producer.publish(make_job(1))

        worker = _burst(settings)

        assert ["job-1"] == [message.job_id for message in smtp_server.messages]
        assert [] == drain_dead_letters(amqp_connection, settings)
        labels = {"lane": "transactional", "policy": "resend"}
        registry = worker.worker.metrics.registry
        assert 1 == registry.get_sample_value("mailfleet_ambiguous_total", labels)

    def test_a_retry_after_a_4xx_is_not_ambiguous(
        self,
        settings: Settings,
        producer: Producer,
        smtp_server: SmtpSink,
        replies: ScriptedReplies,
        amqp_connection: Connection,
    ) -> None:
        """hold, 451 then 250: attempt 2 finds attempt 1's mark, and sends (a new attempt)."""
        replies.script("rcpt1@example.org", "451 4.3.0 try later", None)
        producer.publish(make_job(1))

        worker = _burst(_hold(settings))

        assert ["job-1"] == [message.job_id for message in smtp_server.messages]
        assert [] == drain_dead_letters(amqp_connection, settings)
        registry = worker.worker.metrics.registry
        labels = {"lane": "transactional", "policy": "hold"}
        assert registry.get_sample_value("mailfleet_ambiguous_total", labels) in (None, 0.0)

    def test_an_operator_replays_the_held_ones(
        self,
        settings: Settings,
        producer: Producer,
        smtp_server: SmtpSink,
        redis_client: redis.Redis,
        amqp_connection: Connection,
    ) -> None:
        """`mailfleet dlq replay --reason ambiguous`: the replay is a new round, and sent."""
        _lose_an_attempt(redis_client, settings, "job-1", "rcpt1@example.org")
        producer.publish(make_job(1))
        held = _hold(settings)
        _burst(held)
        assert 0 == smtp_server.count

        result = subprocess.run(
            mailfleet_command("dlq", "replay", "--reason", "ambiguous"),
            env=settings_env(held),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert 0 == result.returncode, result.stderr
        _burst(held)

        assert ["job-1"] == [message.job_id for message in smtp_server.messages]
        assert [] == drain_dead_letters(amqp_connection, settings)


@pytest.fixture
def slow_relay(smtp_server: SmtpSink) -> Iterator[SmtpSink]:
    """The test relay, storing each message 30 ms before it answers 250: the window in
    which a killed worker cannot know it was sent."""
    smtp_server.answer_delay = 0.03
    yield smtp_server
    smtp_server.answer_delay = 0.0


def _kill_repeatedly(settings: Settings, relay: SmtpSink) -> list[int]:
    """Start a worker, SIGKILL it once the relay got a few more messages, _KILLS times;
    then drain with a burst worker. The relay's count at each kill."""
    counts: list[int] = []
    for _ in range(_KILLS):
        worker = WorkerProcess(settings)
        target = relay.count + 20
        assert wait_until(lambda: relay.count >= target, timeout=60), worker.log()  # noqa: B023 (called here, in this turn)
        worker.kill()
        counts.append(relay.count)
    last = WorkerProcess(settings, "--burst")
    assert 0 == last.wait(timeout=180), last.log()
    return counts


class TestSigkill:
    def test_hold_sends_no_duplicate_and_holds_every_id_not_delivered(
        self,
        settings: Settings,
        producer: Producer,
        slow_relay: SmtpSink,
        amqp_connection: Connection,
    ) -> None:
        """hold, 6 SIGKILLs: duplicates = 0; every confirmed id is accepted or dead-lettered
        `ambiguous`; nothing lost."""
        held = _hold(settings, concurrency=4)
        ledger = DeliveryLedger(
            confirmed=set(producer.publish_many(make_job(n) for n in range(_JOBS)))
        )

        counts = _kill_repeatedly(held, slow_relay)

        ledger.record_relay(slow_relay)
        ledger.record_dead(drain_dead_letters(amqp_connection, settings))
        both = set(ledger.dead) & set(ledger.accepted)  # held, and the relay had it after all
        print(
            f"hold: confirmed {len(ledger.confirmed)}, accepted {len(ledger.accepted)}, "
            f"dead {len(ledger.dead)} (accepted too: {len(both)}), "
            f"duplicates {len(ledger.duplicates)}, kills at {counts}"
        )
        assert {} == ledger.duplicates
        assert set() == ledger.lost
        assert {"ambiguous"} >= set(ledger.dead.values())
        # Marks are left just before an email's data goes out: at most one email per sender
        # thread is in doubt after a kill, however many the worker held unacked.
        assert len(ledger.dead) <= _KILLS * 4
        assert ledger.confirmed == set(ledger.accepted) | set(ledger.dead)

    def test_resend_loses_nothing(
        self,
        settings: Settings,
        producer: Producer,
        slow_relay: SmtpSink,
        amqp_connection: Connection,
    ) -> None:
        """resend, 6 SIGKILLs: lost = 0, no dead letter; duplicates carry one Message-ID."""
        ledger = DeliveryLedger(
            confirmed=set(producer.publish_many(make_job(n) for n in range(_JOBS)))
        )

        counts = _kill_repeatedly(settings, slow_relay)

        ledger.record_relay(slow_relay)
        ledger.record_dead(drain_dead_letters(amqp_connection, settings))
        print(
            f"resend: confirmed {len(ledger.confirmed)}, accepted {len(ledger.accepted)}, "
            f"dead {len(ledger.dead)}, duplicates {len(ledger.duplicates)} "
            f"({sum(ledger.duplicates.values()) - len(ledger.duplicates)} extra copies), "
            f"kills at {counts}"
        )
        assert set() == ledger.lost
        assert {} == ledger.dead
        assert ledger.confirmed == set(ledger.accepted)
        for job_id in ledger.duplicates:
            copies = {m.parsed()["Message-ID"] for m in slow_relay.messages if m.job_id == job_id}
            assert 1 == len(copies)
