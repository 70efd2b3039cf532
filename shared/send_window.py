"""Send windows: the days and hours, in a time zone, when a job may go out.

``{"days": "mon-fri", "hours": "09:00-18:00", "tz": "Europe/Berlin"}``. A job outside its
window waits in the delay tiers, without using an attempt, until :meth:`SendWindow.opens_at`.
Pure functions of a UTC instant; time zones and daylight saving go through ``zoneinfo``, and
every comparison is made between UTC instants, so a window on a day whose clocks change is
as long as the wall clock says.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, field_validator

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_WEEK = 7


def parse_days(spec: str) -> frozenset[int]:
    """``mon-fri`` or ``mon,wed,fri`` or ``sat-sun`` → weekday numbers (Monday is 0)."""
    days: set[int] = set()
    for part in spec.lower().replace(" ", "").split(","):
        first, dash, last = part.partition("-")
        if first not in _DAYS or (dash and last not in _DAYS):
            raise ValueError(f"{spec!r}: use day names mon..sun, as in mon-fri or mon,wed,fri")
        start, end = _DAYS.index(first), _DAYS.index(last if dash else first)
        days.update(day % _WEEK for day in range(start, end + 1 if end >= start else end + 8))
    return frozenset(days)


def _clock(text: str, spec: str) -> tuple[int, int, int]:
    """``HH:MM`` or ``HH:MM:SS`` → (hours, minutes, seconds)."""
    parts = text.split(":")
    if not 2 <= len(parts) <= 3 or not all(p.isdigit() and len(p) <= 2 for p in parts):
        raise ValueError(f"{spec!r}: use HH:MM-HH:MM, as in 09:00-18:00")
    if any(len(p) != 2 for p in parts[1:]):
        raise ValueError(f"{spec!r}: use HH:MM-HH:MM, as in 09:00-18:00")
    hours, minutes, seconds = (*map(int, parts), 0)[:3]
    value = (hours, minutes, seconds)
    if minutes > 59 or seconds > 59 or value > (24, 0, 0):
        raise ValueError(f"{spec!r}: {text} is not a time of day")
    return value


Clock = tuple[int, int, int]


def parse_hours(spec: str) -> tuple[Clock, Clock]:
    """``09:00-18:00`` → ((9, 0, 0), (18, 0, 0)); seconds may be given (``09:00:30``); the
    end may be 24:00, and must follow the start."""
    start_text, dash, end_text = spec.replace(" ", "").partition("-")
    if not dash:
        raise ValueError(f"{spec!r}: use HH:MM-HH:MM, as in 09:00-18:00")
    start, end = _clock(start_text, spec), _clock(end_text, spec)
    if end <= start:
        raise ValueError(f"{spec!r}: must end after it starts (no window spans midnight)")
    return start, end


class SendWindow(BaseModel):
    """When a job may be sent: on ``days``, between ``hours``, in time zone ``tz``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    days: str = "mon-sun"
    hours: str = "00:00-24:00"
    tz: str = "UTC"

    @field_validator("days")
    @classmethod
    def _days(cls, value: str) -> str:
        parse_days(value)
        return value

    @field_validator("hours")
    @classmethod
    def _hours(cls, value: str) -> str:
        parse_hours(value)
        return value

    @field_validator("tz")
    @classmethod
    def _tz(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone such as Europe/Berlin") from None
        return value

    @cached_property
    def _weekdays(self) -> frozenset[int]:
        return parse_days(self.days)

    @cached_property
    def _span(self) -> tuple[Clock, Clock]:
        return parse_hours(self.hours)

    @cached_property
    def _zone(self) -> ZoneInfo:
        return ZoneInfo(self.tz)

    def _at(self, day: date, clock: Clock) -> datetime:
        """``clock`` on ``day`` in the window's zone, as a UTC instant (24:00 is the next
        midnight; a wall time skipped by DST lands just after the gap)."""
        hours, minutes, seconds = clock
        wall = datetime.combine(day, time(0, 0)) + timedelta(
            hours=hours, minutes=minutes, seconds=seconds
        )
        return wall.replace(tzinfo=self._zone).astimezone(UTC)

    def opens_at(self, now: datetime) -> datetime:
        """``now`` if the window is open at ``now`` (an aware datetime), else the next
        instant it opens."""
        today = now.astimezone(self._zone).date()
        start, end = self._span
        for offset in range(_WEEK + 1):
            day = today + timedelta(days=offset)
            if day.weekday() not in self._weekdays:
                continue
            opens, closes = self._at(day, start), self._at(day, end)
            if now < opens:
                return opens
            if now < closes:
                return now
        raise AssertionError("a week always has a day of the window")  # pragma: no cover

    def seconds_until_open(self, now: datetime) -> float:
        """0 while open, else how long until it opens."""
        return (self.opens_at(now) - now).total_seconds()

    def describe(self) -> str:
        """``mon-fri 09:00-18:00 Europe/Berlin``."""
        return f"{self.days} {self.hours} {self.tz}"


def parse_window(spec: str) -> SendWindow:
    """A window from JSON (``{"days": ...}``) or ``DAYS HOURS [TZ]``; ValueError if bad."""
    text = spec.strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not valid JSON ({exc.msg})") from None
        return SendWindow.model_validate(data)
    parts = text.split()
    if len(parts) not in (2, 3):
        raise ValueError("use DAYS HOURS [TZ], as in 'mon-fri 09:00-18:00 Europe/Berlin'")
    fields = dict(zip(("days", "hours", "tz"), parts, strict=False))
    return SendWindow.model_validate(fields)
