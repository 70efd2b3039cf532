"""Several rates for one key (``shared/limit_spec.py``): a pace, hourly and daily budgets,
and a relay's warm-up schedule."""

from __future__ import annotations

from datetime import date

import pytest

from mailfleet.shared.durations import Rate
from mailfleet.shared.limit_spec import DAY, HOUR, Budget, Limit, Warmup
from mailfleet.shared.relays import Relay
from mailfleet.shared.settings import load_settings


class TestLimit:
    """Per second and minute: the pace; per hour and day: budgets."""

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("200/s", Limit(Rate(200, 1))),
            ("200/s,500000/d", Limit(Rate(200, 1), (Budget(500000, DAY),))),
            ("20/s, 20000/h", Limit(Rate(20, 1), (Budget(20000, HOUR),))),
            ("50/d", Limit(None, (Budget(50, DAY),))),
            ("1000/d,100/h,5/s", Limit(Rate(5, 1), (Budget(100, HOUR), Budget(1000, DAY)))),
        ],
    )
    def test_parse(self, text: str, expected: Limit) -> None:
        """Each rate finds its place; budgets are ordered hour, then day."""
        assert expected == Limit.parse(text)

    @pytest.mark.parametrize(
        ("text", "problem"),
        [
            ("10/s,20/m", "two paces"),
            ("10/d,20/d", "two budgets per d"),
            ("1.5/d", "whole number"),
            ("10/s,", "is not a rate"),
            ("fast", "is not a rate"),
        ],
    )
    def test_refused(self, text: str, problem: str) -> None:
        """Two paces, two budgets of one window or a fraction of a send: one clear error."""
        with pytest.raises(ValueError, match=problem):
            Limit.parse(text)

    def test_round_trip(self) -> None:
        """``str`` spells the limit as it is written."""
        assert "200/s,20000/h,500000/d" == str(Limit.parse("500000/d,200/s,20000/h"))

    def test_a_rate_is_a_pace(self) -> None:
        """A bare Rate (older callers) is a limit with that pace and no budget."""
        assert Limit(Rate(10, 1)) == Limit.of(Rate(10, 1))


class TestWarmup:
    """``warmup=50/d,100/d&since=2026-12-01``: one daily cap per day, then none."""

    warmup = Warmup.parse("50/d,100/d,500/d", "2026-12-01")

    @pytest.mark.parametrize(
        ("day", "cap"),
        [
            (date(2026, 11, 30), 50),  # before it starts: the first step
            (date(2026, 12, 1), 50),
            (date(2026, 12, 2), 100),
            (date(2026, 12, 3), 500),
            (date(2026, 12, 4), None),  # over: lifted
        ],
    )
    def test_cap_on(self, day: date, cap: int | None) -> None:
        """The n-th day from since has the n-th cap."""
        assert cap == self.warmup.cap_on(day)

    @pytest.mark.parametrize(
        ("schedule", "since", "problem"),
        [
            ("50/d", None, "warmup needs since"),
            ("50/d", "yesterday", "since must be a date"),
            ("50/h", "2026-12-01", "daily caps"),
        ],
    )
    def test_refused(self, schedule: str, since: str | None, problem: str) -> None:
        """A schedule without its first day, or with steps that are not daily caps."""
        with pytest.raises(ValueError, match=problem):
            Warmup.parse(schedule, since)


class TestRelayLimits:
    """A relay URL's ``rate=`` takes several rates; ``warmup=`` and ``since=`` go together."""

    def test_rate_list_and_warmup(self) -> None:
        """Pace, budgets and warm-up of one relay URL."""
        relay = Relay.parse(
            "smtp://relay:25?source=127.0.0.2&rate=100/s,50000/d&warmup=50/d,100/d&since=2026-12-01"
        )
        assert Rate(100, 1) == relay.rate
        assert (Budget(50000, DAY),) == relay.budgets
        assert Warmup((50, 100), date(2026, 12, 1)) == relay.warmup

    def test_since_without_warmup(self) -> None:
        with pytest.raises(ValueError, match="since is the first day of a warmup"):
            Relay.parse("smtp://relay?since=2026-12-01")

    def test_comma_list_of_relays_with_rate_lists(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """In MAILFLEET_SMTP_RELAYS only a comma before smtp:// separates relays."""
        monkeypatch.setenv(
            "MAILFLEET_SMTP_RELAYS", "smtp://a:25?rate=10/s,500/d, smtp://b:25?rate=5/s,"
        )
        relays = load_settings().smtp_relays
        assert [("a", (Budget(500, DAY),)), ("b", ())] == [(r.host, r.budgets) for r in relays]
