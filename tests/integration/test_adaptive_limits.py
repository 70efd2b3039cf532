"""Adaptive per-domain limits: a domain that pushes back is slowed for the whole fleet while
other domains keep full speed, and it recovers step by step as sends succeed."""

from __future__ import annotations

import json
from pathlib import Path

import redis

from mailfleet.producer.devtools.sink import SmtpSink
from mailfleet.producer.publisher import Producer
from mailfleet.shared.durations import Rate
from mailfleet.shared.settings import Settings
from mailfleet.worker.limits.explain import explain
from tests.integration.helpers import WorkerThread, make_job, wait_until
from tests.integration.relays import ScriptedReplies

THROTTLED = "421 4.7.0 Too many messages, rate limited: slow down"


def _factors(client: redis.Redis, settings: Settings) -> dict[str, float]:
    raw = client.hgetall(settings.names.redis_key("adaptive"))
    return {key.decode(): float(value) for key, value in raw.items()}


class TestAdaptiveLimits:
    def test_a_throttling_domain_slows_down_alone_and_recovers(
        self,
        settings: Settings,
        producer: Producer,
        smtp_server: SmtpSink,
        replies: ScriptedReplies,
        redis_client: redis.Redis,
        tmp_path: Path,
    ) -> None:
        """421 4.7.0 from slow.example: its factor drops below 1, fast.example's stays at
        full rate, explain shows the slowdown, and successes bring the factor back to 1."""
        limits = {"slow.example": Rate.parse("30/s"), "fast.example": Rate.parse("30/s")}
        tuned = settings.model_copy(
            update={"domain_limits": limits, "max_attempts": 5, "concurrency": 8}
        )
        for n in range(20):
            replies.script(f"s{n}@slow.example", THROTTLED, None)
        worker = WorkerThread(tuned)
        producer.publish_many(
            [make_job(n, to=[f"s{n}@slow.example"]) for n in range(20)]
            + [make_job(100 + n, to=[f"f{n}@fast.example"]) for n in range(90)]
        )

        assert wait_until(lambda: _factors(redis_client, tuned).get("slow.example", 1) < 1, 10)
        assert "fast.example" not in _factors(redis_client, tuned)
        job_file = tmp_path / "job.json"
        job_file.write_text(
            json.dumps({"from": "a@b.example", "to": ["x@slow.example"], "text": "hi"})
        )
        report = explain(tuned, job_file)
        assert report.limits[0].factor < 1
        assert "slowed to" in report.render()

        assert wait_until(lambda: smtp_server.count == 110, timeout=60)
        fast = sorted(
            m.received_at for m in smtp_server.messages if m.rcpt_tos[0].endswith("@fast.example")
        )
        assert (len(fast) - 1) / (fast[-1] - fast[0]) >= 30 * 0.8

        producer.publish_many(make_job(200 + n, to=[f"ok{n}@slow.example"]) for n in range(150))
        assert wait_until(lambda: "slow.example" not in _factors(redis_client, tuned), 40)
        assert 0 == worker.stop()
