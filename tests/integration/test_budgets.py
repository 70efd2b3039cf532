"""Budgets per day and warm-up schedules on real Redis, RabbitMQ and an SMTP relay: a spent
budget holds jobs in the delay tiers without using attempts, the count outlives the
workers, raising it releases them, and a relay's warm-up follows its schedule by day."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
from kombu.connection import Connection

from mailfleet.producer.devtools.sink import SmtpSink
from mailfleet.producer.publisher import Producer
from mailfleet.shared.limit_spec import Limit
from mailfleet.shared.relays import Relay
from mailfleet.shared.settings import Settings
from mailfleet.worker.limits.explain import explain
from tests.integration.helpers import WorkerThread, drain_dead_letters, make_job, wait_until


def over_budget(worker: WorkerThread) -> float:
    registry = worker.worker.metrics.registry
    labels = {"outcome": "over_budget", "lane": "transactional"}
    return registry.get_sample_value("mailfleet_jobs_total", labels) or 0.0


def retries(worker: WorkerThread) -> float:
    registry = worker.worker.metrics.registry
    return sum(
        sample.value
        for metric in registry.collect()
        if metric.name == "mailfleet_retries"
        for sample in metric.samples
        if sample.name == "mailfleet_retries_total"
    )


def days_ago(days: int) -> str:
    return (datetime.now(UTC).date() - timedelta(days=days)).isoformat()


class TestDailyBudget:
    def test_fifty_of_eighty_go_the_rest_wait_then_a_raise_releases_them(
        self,
        settings: Settings,
        producer: Producer,
        smtp_server: SmtpSink,
        amqp_connection: Connection,
        redis_client: redis.Redis,
    ) -> None:
        """MAILFLEET_RATE_LIMIT=50/d and 80 jobs: 50 are sent, 30 come back from the delay
        tiers again and again (more often than max_attempts, so no attempt is used: none
        is dead-lettered); a restarted worker sends none of them (the count is in Redis);
        one with 80/d sends exactly the 30."""
        budget = settings.model_copy(update={"rate_limit": Limit.parse("50/d")})
        producer.publish_many(make_job(n) for n in range(80))

        first = WorkerThread(budget)
        assert wait_until(lambda: smtp_server.count >= 50, timeout=60)
        held_often = 30 * settings.max_attempts + 1  # some job came back > max_attempts times
        assert wait_until(lambda: over_budget(first) >= held_often, timeout=60)
        assert 0 == first.stop()
        assert 50 == smtp_server.count
        assert 0 == retries(first)

        restarted = WorkerThread(budget)
        assert wait_until(lambda: over_budget(restarted) >= 30, timeout=60)
        assert 0 == restarted.stop()
        assert 50 == smtp_server.count

        raised = WorkerThread(settings.model_copy(update={"rate_limit": Limit.parse("80/d")}))
        assert wait_until(lambda: smtp_server.count >= 80, timeout=60)
        assert 0 == raised.stop()

        sent = Counter(message.job_id for message in smtp_server.messages)
        assert {f"job-{n}" for n in range(80)} == set(sent)
        assert {1} == set(sent.values())
        assert [] == drain_dead_letters(amqp_connection, settings)
        day = int(redis_client.time()[0]) // 86400
        stored = redis_client.get(settings.names.redis_key("rate", "global", "1d"))
        assert f"{day}:80".encode() == stored


class TestWarmup:
    @pytest.mark.parametrize(("days_back", "allowed"), [(0, 5), (1, 10), (2, 20), (3, 25)])
    def test_the_cap_follows_the_schedule_day_by_day(
        self,
        settings: Settings,
        producer: Producer,
        smtp_server: SmtpSink,
        days_back: int,
        allowed: int,
    ) -> None:
        """warmup=5/d,10/d,20/d with since N days back: day 0 lets 5 of 25 out, day 1 10,
        day 2 20, and from day 3 the schedule is over and all 25 go."""
        relay = Relay.parse(f"{smtp_server.url}?warmup=5/d,10/d,20/d&since={days_ago(days_back)}")
        producer.publish_many(make_job(n) for n in range(25))

        worker = WorkerThread(settings.model_copy(update={"smtp_relays": [relay]}))
        assert wait_until(lambda: smtp_server.count >= allowed, timeout=60)
        held = 25 - allowed
        assert wait_until(lambda: over_budget(worker) >= 3 * held, timeout=60)
        assert 0 == worker.stop()
        assert allowed == smtp_server.count


class TestPoolWarmup:
    def test_a_warming_source_passes_its_share_to_the_others(
        self, settings: Settings, producer: Producer, smtp_server: SmtpSink
    ) -> None:
        """127.0.0.2 warms up (5 today), 127.0.0.3 has no cap: once .2 has sent its 5, the
        rest goes through .3, and nothing waits."""
        pool = [
            Relay.parse(f"{smtp_server.url}?source=127.0.0.2&warmup=5/d,50/d&since={days_ago(0)}"),
            Relay.parse(f"{smtp_server.url}?source=127.0.0.3"),
        ]
        producer.publish_many(make_job(n) for n in range(40))

        worker = WorkerThread(settings.model_copy(update={"smtp_relays": pool}), burst=True)
        assert 0 == worker.join(timeout=60)

        peers = Counter(message.peer for message in smtp_server.messages)
        assert {"127.0.0.2": 5, "127.0.0.3": 35} == dict(peers)
        assert 0 == over_budget(worker)


class TestExplain:
    def test_explain_shows_what_is_left_and_when_it_refills(
        self, settings: Settings, producer: Producer, smtp_server: SmtpSink, tmp_path: Path
    ) -> None:
        """After 3 sends against 200/s,10/h and a relay warm-up of 4/d: explain shows 7 left
        this hour, 1 left today on the relay, each refilling when its window ends."""
        relay = Relay.parse(f"{smtp_server.url}?warmup=4/d,8/d&since={days_ago(0)}")
        tuned = settings.model_copy(
            update={"rate_limit": Limit.parse("200/s,10/h"), "smtp_relays": [relay]}
        )
        producer.publish_many(make_job(n) for n in range(3))
        assert 0 == WorkerThread(tuned, burst=True).join(timeout=60)
        job_file = tmp_path / "job.json"
        job_file.write_bytes(make_job(99).to_wire())

        report = explain(tuned, job_file)

        states = {state.bucket: state for state in report.limits}
        hourly = states["global per hour"]
        warmup = states[f"relay {relay.name} warm-up"]
        assert (7, "10/h") == (hourly.remaining, hourly.rate)
        assert (1, "4/d") == (warmup.remaining, warmup.rate)
        assert hourly.refills_in_s is not None
        assert 0 < hourly.refills_in_s <= 3600
        assert warmup.refills_in_s is not None
        assert 0 < warmup.refills_in_s <= 86400
        assert "7 left, refills in" in report.render()
        assert 0.0 == report.wait_s
