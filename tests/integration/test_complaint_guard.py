"""The complaint guard's script on the real Redis: when it pauses, when a pause ends."""

from __future__ import annotations

from datetime import UTC, datetime

import redis

from mailfleet.shared.complaint_guard import RECHECK_SECONDS, ComplaintGuard
from mailfleet.shared.reports import Count, Metric, ReportKeys
from mailfleet.shared.round_trip import run_together
from mailfleet.shared.settings import Settings

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC).timestamp()


def _count(client: redis.Redis, keys: ReportKeys, metric: Metric, n: int, at: float) -> None:
    for command in keys.increments(
        [Count(metric, "news.example.com", "x.org", "bulk", n)], datetime.fromtimestamp(at, UTC)
    ):
        client.execute_command(*command)  # type: ignore[no-untyped-call]


def _guard(client: redis.Redis, keys: ReportKeys, now: float) -> ComplaintGuard:
    return ComplaintGuard(client, keys, 0.003, 1000, clock=lambda: now)


def _paused(client: redis.Redis, guard: ComplaintGuard) -> set[str]:
    return ComplaintGuard.paused_of(run_together(client, [guard.read_call()])[0])


def test_the_guard_pauses_over_the_rate_with_enough_sends_and_lifts_it_later(
    settings: Settings, redis_client: redis.Redis
) -> None:
    """Under 1000 sends never pauses; over 0.3 % pauses; once older hours leave the 24-h
    window the next due re-check lifts it."""
    keys = ReportKeys(settings.names)
    _count(redis_client, keys, Metric.SENT, 999, NOW)
    _count(redis_client, keys, Metric.COMPLAINED, 10, NOW)
    assert not _guard(redis_client, keys, NOW).evaluate("news.example.com").paused
    _count(redis_client, keys, Metric.SENT, 1, NOW)
    verdict = _guard(redis_client, keys, NOW).evaluate("news.example.com")
    assert (True, 1000, 10) == (verdict.paused, verdict.sent, verdict.complained)
    assert {"news.example.com"} == _paused(redis_client, _guard(redis_client, keys, NOW + 60))

    day_later = NOW + 25 * 3600  # the complaints' hour is out of the window
    _count(redis_client, keys, Metric.SENT, 1000, day_later)
    assert {"news.example.com"} == _paused(redis_client, _guard(redis_client, keys, NOW + 60))
    assert set() == _paused(redis_client, _guard(redis_client, keys, day_later + RECHECK_SECONDS))
    assert [] == _guard(redis_client, keys, day_later).pauses()
