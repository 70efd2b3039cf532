"""Choosing the delay tier for a retry."""

# STYLE.md asks for `assert expected == actual`; ruff's SIM300 wants the reverse.

from __future__ import annotations

import pytest

from mailfleet.worker.backoff import retry_delay, wait_tier

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
