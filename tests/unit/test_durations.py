"""Durations (``5s``, ``2m``, ``1h``, ``7d``, ``250ms``) and rates (``200/s``)."""

from __future__ import annotations

import pytest

from mailfleet.shared.durations import Rate, format_duration, parse_duration


class TestParseDuration:
    """``parse_duration``: seconds in a short spelling."""

    @pytest.mark.parametrize(
        ("text", "seconds"),
        [
            ("5s", 5.0),
            ("2m", 120.0),
            ("1h", 3600.0),
            ("7d", 604800.0),
            ("250ms", 0.25),
            ("0.5s", 0.5),
            ("1.5m", 90.0),
            ("90s", 90.0),
            ("5 s", 5.0),
            ("  10m  ", 600.0),
        ],
    )
    def test_valid(self, text: str, seconds: float) -> None:
        """A number with a unit of ms, s, m, h or d is that many seconds."""
        assert seconds == parse_duration(text)

    @pytest.mark.parametrize(
        "text",
        [
            "",
            "5",
            "s",
            "5x",
            "5S",
            "5 sec",
            "-5s",
            "0s",
            "0ms",
            "0.0h",
            ".5s",
            "1e3s",
            "5s5",
            "1h30m",
        ],
    )
    def test_invalid(self, text: str) -> None:
        """No unit, an unknown unit, a sign, zero or a compound spelling is refused."""
        with pytest.raises(ValueError, match=r"duration|longer than zero"):
            parse_duration(text)


class TestFormatDuration:
    """``format_duration``: the shortest exact spelling, used in queue names."""

    @pytest.mark.parametrize(
        ("seconds", "text"),
        [
            (5, "5s"),
            (30, "30s"),
            (90, "90s"),
            (120, "2m"),
            (300, "5m"),
            (5400, "90m"),
            (3600, "1h"),
            (7200, "2h"),
            (86400, "1d"),
            (172800, "2d"),
            (0.25, "250ms"),
            (1.5, "1500ms"),
        ],
    )
    def test_spelling(self, seconds: float, text: str) -> None:
        """The largest unit that divides the duration exactly is used."""
        assert text == format_duration(seconds)

    @pytest.mark.parametrize("text", ["5s", "30s", "2m", "10m", "1h", "7d", "250ms", "90s"])
    def test_round_trip(self, text: str) -> None:
        """Formatting a parsed duration gives back its canonical spelling."""
        assert text == format_duration(parse_duration(text))


class TestRate:
    """``Rate.parse``: events per second, minute or hour."""

    @pytest.mark.parametrize(
        ("text", "count", "per_seconds", "per_second"),
        [
            ("200/s", 200.0, 1.0, 200.0),
            ("6000/m", 6000.0, 60.0, 100.0),
            ("36000/h", 36000.0, 3600.0, 10.0),
            ("1.5/s", 1.5, 1.0, 1.5),
            ("30/m", 30.0, 60.0, 0.5),
            (" 10 / s ", 10.0, 1.0, 10.0),
        ],
    )
    def test_valid(self, text: str, count: float, per_seconds: float, per_second: float) -> None:
        """``N/s``, ``N/m`` and ``N/h`` give a count, a period and a per-second rate."""
        rate = Rate.parse(text)
        assert (count, per_seconds, per_second) == (rate.count, rate.per_seconds, rate.per_second)

    @pytest.mark.parametrize(
        "text",
        ["", "200", "/s", "200/", "200/w", "200/S", "200 per s", "-1/s", "0/s", "0.0/m", "a/s"],
    )
    def test_invalid(self, text: str) -> None:
        """No period, an unknown period, a sign or zero is refused."""
        with pytest.raises(ValueError, match=r"rate|more than zero"):
            Rate.parse(text)

    @pytest.mark.parametrize("text", ["200/s", "5000/m", "100000/h", "1.5/s", "0.5/h", "50/d"])
    def test_str_round_trip(self, text: str) -> None:
        """``str`` of a parsed rate is its spelling, whole counts without a decimal point."""
        assert text == str(Rate.parse(text))
