"""A bucket's window: how many grants, over what span, and the send-time spread it allows
before a second at the relay could hold more than rate + burst."""

from __future__ import annotations

import pytest

from mailfleet.shared.durations import Rate
from mailfleet.worker.limits.bucket import Bucket


def _bucket(rate: str, burst: int) -> Bucket:
    return Bucket("ns:rate:global", "global", Rate.parse(rate), burst)


class TestWindow:
    @pytest.mark.parametrize(
        ("rate", "burst", "count", "window_us", "spread_us"),
        [
            ("40/s", 5, 45, 1_100_000, 100_000),  # the README's example: 4 intervals
            ("200/s", 10, 210, 1_045_000, 45_000),
            ("5000/m", 5, 88, 1_044_000, 44_000),  # 83.3/s: rounded down to whole intervals
            ("40/s", 2, 42, 0, 25_000),  # burst 2: the GCRA alone, one interval
            ("20/s", 1, 21, 0, 50_000),  # burst 1: the GCRA alone, one interval
        ],
    )
    def test_the_window_is_a_second_plus_the_tolerance(
        self, rate: str, burst: int, count: int, window_us: int, spread_us: int
    ) -> None:
        """Rate + burst grants at most, in 1 s + (burst - 1) intervals (rounded down to
        whole intervals); the spread it allows is that span less the second."""
        bucket = _bucket(rate, burst)

        assert count == bucket.window_count
        assert window_us == bucket.window_us
        assert spread_us == bucket.spread_us

    def test_evenly_spaced_grants_at_the_full_rate_fit_with_room_for_one(self) -> None:
        """The window never holds back a fleet that sends exactly at the rate: the span
        holds one grant fewer than the window allows, so a late grant can catch up."""
        bucket = _bucket("40/s", 5)

        evenly_spaced = -(-bucket.window_us // bucket.interval_us)  # grants in the span

        assert bucket.window_count - 1 == evenly_spaced

    def test_a_slowed_bucket_has_a_longer_window_of_fewer_grants(self) -> None:
        """At half its rate, 40/s burst 5 allows 20 + 5 grants in 24 intervals of 50 ms."""
        count, span = _bucket("40/s", 5).window_at(0.5)

        assert (25, 1_200_000.0) == (count, span)
