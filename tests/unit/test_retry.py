"""The retry policy: the delay tier of each attempt, giving up, the crash limit."""

from __future__ import annotations

import pytest

from mailfleet.shared.settings import Settings
from mailfleet.worker.retry import RetryPolicy, retry_delay, wait_tier

TIERS = [5.0, 30.0, 120.0, 600.0, 3600.0]


class TestRetryDelay:
    """``retry_delay``: the attempt-th tier, the last one once past the end."""

    @pytest.mark.parametrize(
        ("attempt", "delay"),
        [(1, 5.0), (2, 30.0), (3, 120.0), (4, 600.0), (5, 3600.0), (6, 3600.0), (100, 3600.0)],
    )
    def test_tier_per_attempt(self, attempt: int, delay: float) -> None:
        """Attempt N waits the Nth tier, and every attempt past the last waits the last."""
        assert delay == retry_delay(attempt, TIERS)

    @pytest.mark.parametrize("attempt", [0, -1])
    def test_before_first_attempt(self, attempt: int) -> None:
        """An attempt number below 1 waits the shortest tier."""
        assert 5.0 == retry_delay(attempt, TIERS)

    def test_unsorted_tiers(self) -> None:
        """Tiers are used shortest first, whatever order they are configured in."""
        assert [5.0, 30.0, 120.0] == [retry_delay(n, [120.0, 5.0, 30.0]) for n in (1, 2, 3)]

    def test_one_tier(self) -> None:
        """With one tier, every retry waits it."""
        assert [60.0, 60.0, 60.0] == [retry_delay(n, [60.0]) for n in (1, 2, 9)]


class TestWaitTier:
    """``wait_tier``: the longest tier that does not overshoot a wait."""

    @pytest.mark.parametrize(
        ("seconds", "tier"),
        [
            (5.0, 5.0),
            (29.9, 5.0),
            (30.0, 30.0),
            (45.0, 30.0),
            (599.0, 120.0),
            (3600.0, 3600.0),
            (86400.0, 3600.0),
            (1.0, 5.0),
            (0.0, 5.0),
        ],
    )
    def test_longest_fitting_tier(self, seconds: float, tier: float) -> None:
        """The longest tier not longer than the wait; the shortest if all are longer."""
        assert tier == wait_tier(seconds, TIERS)

    def test_unsorted_tiers(self) -> None:
        """The order the tiers are configured in does not matter."""
        assert 120.0 == wait_tier(500.0, [3600.0, 5.0, 120.0, 30.0])


POLICY = RetryPolicy(delays=TIERS, max_attempts=3, max_age=3600.0, crash_limit=5)


class TestRetryPolicy:
    """The retry-or-give-up rule and the crash limit, from the settings."""

    @pytest.mark.parametrize(
        ("attempt", "gives_up"), [(1, False), (2, False), (3, True), (9, True)]
    )
    def test_gives_up_after_the_last_attempt(self, attempt: int, gives_up: bool) -> None:
        assert gives_up == POLICY.gives_up(attempt, published_at=1000.0, now=1001.0)

    def test_gives_up_on_a_job_older_than_the_max_age(self) -> None:
        assert not POLICY.gives_up(1, published_at=1000.0, now=1000.0 + 3600.0)
        assert POLICY.gives_up(1, published_at=1000.0, now=1000.0 + 3601.0)

    def test_a_job_without_a_timestamp_is_never_too_old(self) -> None:
        assert not POLICY.gives_up(1, published_at=None, now=1e12)

    def test_each_attempt_waits_its_tier(self) -> None:
        assert [5.0, 30.0, 120.0] == [POLICY.delay_after(attempt) for attempt in (1, 2, 3)]

    @pytest.mark.parametrize(("count", "crashed"), [(0, False), (4, False), (5, True), (6, True)])
    def test_the_crash_limit(self, count: int, crashed: bool) -> None:
        assert crashed == POLICY.crashed_out(count)

    def test_from_settings(self) -> None:
        settings = Settings(max_attempts=4, retry_delays=[1.0, 2.0], delivery_limit=7)
        policy = RetryPolicy.from_settings(settings)
        assert (4, [1.0, 2.0], 7) == (policy.max_attempts, policy.delays, policy.crash_limit)
