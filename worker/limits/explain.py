"""``mailfleet explain JOB.json``: which limits apply to a job, their state, and its wait.

Paces show whether a token is there; budgets show what is left of this hour or day and when
the next one starts; a relay's own limits (its pace, budgets, warm-up) are listed per relay,
as the job would meet them on the relay it is sent through.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import redis

from mailfleet.shared.addresses import domain_of
from mailfleet.shared.complaint_guard import ComplaintGuard
from mailfleet.shared.job import EmailJob, Lane, parse_job
from mailfleet.shared.limit_spec import DAY
from mailfleet.shared.redis_client import make_redis
from mailfleet.shared.reports import ReportKeys
from mailfleet.shared.settings import Settings
from mailfleet.worker.limits.adaptive import AdaptiveLimits
from mailfleet.worker.limits.bucket import Bucket
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
    remaining: int | None = None  # a budget: sends left in this window (None: no cap today)
    refills_in_s: float | None = None  # a budget: when its next window starts

    def describe(self) -> str:
        if self.refills_in_s is None:
            now = "token available" if not self.wait_s else f"next token in {self.wait_s}s"
            slowed = "" if self.factor >= 1 else f" (slowed to {self.effective_rate})"
            return f"  {self.bucket:<28} {self.rate:>9}{slowed} burst {self.burst:<5} {now}"
        refill = _spell(self.refills_in_s)
        if self.remaining is None:
            return f"  {self.bucket:<28} {self.rate:>9} warm-up over, no cap (day ends in {refill})"
        return f"  {self.bucket:<28} {self.rate:>9} {self.remaining} left, refills in {refill}"


@dataclass(frozen=True)
class Explanation:
    job_id: str
    lane: str
    limits: list[BucketState] = field(default_factory=list)
    paused: str | None = None  # why the complaint guard holds this bulk job back
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
        lines += [state.describe() for state in self.limits]
        if self.window is not None:
            when = f"opens {self.window_opens_at}" if self.window_wait_s else "open now"
            lines.append(f"  send window {self.window}: {when}")
        if self.paused:
            lines.append(f"  paused: {self.paused}")
        lines.append(f"would wait {self.wait_s}s" + (" once the pause ends" if self.paused else ""))
        return "\n".join(lines)


def bucket_state(limiter: RateLimiter, bucket: Bucket) -> BucketState:
    """``bucket``'s rate, burst and, read from Redis now, its slow-down and wait; for a
    budget, what is left and when it refills."""
    if bucket.is_budget:
        budget = limiter.budget_state(bucket)
        unit = "d" if bucket.window_s == DAY else "h"
        rate = "-" if budget.cap is None else f"{budget.cap}/{unit}"
        spent = budget.remaining == 0
        return BucketState(
            bucket=bucket.label,
            key=bucket.key,
            rate=rate,
            burst=0,
            factor=1.0,
            effective_rate=rate,
            wait_s=round(budget.refills_in_s, 3) if spent else 0.0,
            remaining=budget.remaining,
            refills_in_s=round(budget.refills_in_s, 3),
        )
    factor, wait = limiter.state(bucket)
    return BucketState(
        bucket=bucket.label,
        key=bucket.key,
        rate=str(bucket.rate),
        burst=bucket.burst,
        factor=round(factor, 3),
        effective_rate=str(bucket.slowed(factor).rate),
        wait_s=round(wait, 3),
    )


def explain_job(settings: Settings, job: EmailJob) -> Explanation:
    """The limits that apply to ``job`` and their state now (raises RedisUnavailable)."""
    client = make_redis(settings)
    try:
        limiter = RateLimiter(client, settings)
        buckets = limiter.buckets_for(job, job.recipients())
        for relay_buckets in limiter.relay_buckets().values():
            buckets += relay_buckets
        states = [bucket_state(limiter, bucket) for bucket in buckets]
        paused = _pause_of(client, settings, job) if job.lane is Lane.BULK else None
    finally:
        client.close()
    window, opens_at, window_wait = _window_of(settings, job)
    return Explanation(job.id, job.lane.value, states, paused, window, opens_at, window_wait)


def _window_of(settings: Settings, job: EmailJob) -> tuple[str | None, str | None, float]:
    """The job's send window (its own or its lane's), when it opens next, and the wait."""
    window = SendTime(settings.lane_windows).window_of(job)
    if window is None:
        return None, None, 0.0
    now = datetime.now(UTC).replace(microsecond=0)
    opens = window.opens_at(now)
    return window.describe(), opens.isoformat(), round((opens - now).total_seconds(), 3)


def explain(settings: Settings, path: Path) -> Explanation:
    """The limits for the job in ``path`` (raises InvalidJobError / RedisUnavailable)."""
    return explain_job(settings, parse_job(path.read_bytes(), settings.job_limits))


@dataclass(frozen=True)
class FleetLimits:
    """Every configured bucket's state, and the slow-down of each domain with a limit."""

    buckets: list[BucketState]
    slowdowns: dict[str, float]  # domain → factor (1.0: not slowed)


def fleet_limits(settings: Settings) -> FleetLimits:
    """What the dashboard's limits page shows (raises RedisUnavailable)."""
    client = make_redis(settings)
    try:
        limiter = RateLimiter(client, settings)
        states = [bucket_state(limiter, bucket) for bucket in limiter.configured_buckets()]
        adaptive = AdaptiveLimits(client, settings.names, set(settings.domain_limits))
        slowdowns = adaptive.refresh()
    finally:
        client.close()
    return FleetLimits(states, slowdowns)


def _pause_of(client: redis.Redis, settings: Settings, job: EmailJob) -> str | None:
    guard = ComplaintGuard(
        client,
        ReportKeys(settings.names, settings.report_days),
        settings.complaint_pause,
        settings.complaint_min_sends,
    )
    sender = domain_of(job.from_)
    for pause in guard.pauses():
        if pause.domain == sender:
            return (
                f"bulk mail from {sender} is paused by the complaint guard: "
                f"{pause.complained} complaints in {pause.sent} sends over 24 h "
                f"({pause.rate * 100:.2f} %); `mailfleet resume {sender}` lifts it"
            )
    return None


def _spell(seconds: float) -> str:
    """``3h 2m``, ``5m 10s`` or ``42s``."""
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {secs}s" if minutes else f"{secs}s"
