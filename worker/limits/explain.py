"""``mailfleet explain JOB.json``: which limits apply to a job, their state, and its wait."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from mailfleet.shared.job import parse_job
from mailfleet.shared.redis_client import make_redis
from mailfleet.shared.settings import Settings
from mailfleet.worker.limits.buckets import RateLimiter
from mailfleet.worker.send_time import SendTime


@dataclass(frozen=True)
class BucketState:
    bucket: str
    key: str
    rate: str
    burst: int
    factor: float  # adaptive: below 1 while the domain pushes back
    effective_rate: str
    wait_s: float


@dataclass(frozen=True)
class Explanation:
    job_id: str
    lane: str
    limits: list[BucketState] = field(default_factory=list)
    window: str | None = None  # its send window, its own or its lane's
    window_opens_at: str | None = None  # ISO 8601 UTC; now, while the window is open
    window_wait_s: float = 0.0

    @property
    def wait_s(self) -> float:
        buckets = max((state.wait_s for state in self.limits), default=0.0)
        return max(buckets, self.window_wait_s)

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "wait_s": self.wait_s}, indent=2)

    def render(self) -> str:
        lines = [f"job {self.job_id} (lane {self.lane})"]
        if not self.limits:
            lines.append("  no limit applies (MAILFLEET_RATE_LIMIT, _DOMAIN_LIMITS, _LANE_LIMITS)")
        for state in self.limits:
            now = "token available" if not state.wait_s else f"next token in {state.wait_s}s"
            slowed = "" if state.factor >= 1 else f" (slowed to {state.effective_rate})"
            lines.append(
                f"  {state.bucket:<28} {state.rate:>9}{slowed} burst {state.burst:<5} {now}"
            )
        if self.window is not None:
            when = f"opens {self.window_opens_at}" if self.window_wait_s else "open now"
            lines.append(f"  send window {self.window}: {when}")
        lines.append(f"would wait {self.wait_s}s")
        return "\n".join(lines)


def explain(settings: Settings, path: Path) -> Explanation:
    """The limits for the job in ``path`` (raises InvalidJobError / RedisUnavailable)."""
    job = parse_job(path.read_bytes(), settings.job_limits)
    client = make_redis(settings)
    try:
        limiter = RateLimiter(client, settings)
        states = []
        for bucket in limiter.buckets_for(job, job.recipients()):
            factor, wait = limiter.state(bucket)
            states.append(
                BucketState(
                    bucket=bucket.label,
                    key=bucket.key,
                    rate=str(bucket.rate),
                    burst=bucket.burst,
                    factor=round(factor, 3),
                    effective_rate=str(bucket.slowed(factor).rate),
                    wait_s=round(wait, 3),
                )
            )
    finally:
        client.close()
    window = SendTime(settings.lane_windows).window_of(job)
    if window is None:
        return Explanation(job.id, job.lane.value, states)
    now = datetime.now(UTC).replace(microsecond=0)
    opens = window.opens_at(now)
    wait = (opens - now).total_seconds()
    return Explanation(
        job.id, job.lane.value, states, window.describe(), opens.isoformat(), round(wait, 3)
    )
