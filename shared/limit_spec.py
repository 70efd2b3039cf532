"""A rate setting with several rates for one key: ``200/s,500000/d``.

Per second and per minute rates are *paces*: a GCRA bucket spaces the sends (at most one
pace per setting). Per hour and per day rates are *budgets*: a count per calendar hour or
UTC day on Redis's clock (at most one of each), that refills when the next one starts.
``MAILFLEET_RATE_LIMIT``, the values of ``MAILFLEET_DOMAIN_LIMITS`` and
``MAILFLEET_LANE_LIMITS``, and a relay URL's ``?rate=`` all take this form.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from mailfleet.shared.durations import Rate

HOUR, DAY = 3600, 86400
_UNIT = {HOUR: "h", DAY: "d"}


@dataclass(frozen=True)
class Budget:
    """At most ``count`` sends per window (a calendar hour or a UTC day)."""

    count: int
    window_seconds: int

    def __str__(self) -> str:
        return f"{self.count}/{_UNIT[self.window_seconds]}"


@dataclass(frozen=True)
class Limit:
    pace: Rate | None = None
    budgets: tuple[Budget, ...] = ()

    @classmethod
    def parse(cls, text: str) -> Limit:
        pace: Rate | None = None
        budgets: dict[int, Budget] = {}
        for part in text.split(","):
            rate = Rate.parse(part)
            if rate.per_seconds in _UNIT:
                if rate.per_seconds in budgets:
                    raise ValueError(f"{text!r} has two budgets per {_UNIT[int(rate.per_seconds)]}")
                if rate.count != int(rate.count):
                    raise ValueError(f"{part.strip()!r}: a budget is a whole number of sends")
                window = int(rate.per_seconds)
                budgets[window] = Budget(int(rate.count), window)
            elif pace is not None:
                raise ValueError(f"{text!r} has two paces; give one per second or minute")
            else:
                pace = rate
        return cls(pace, tuple(budgets[window] for window in sorted(budgets)))

    @classmethod
    def of(cls, value: Limit | Rate) -> Limit:
        """``value`` as a limit: a bare :class:`Rate` is a pace alone."""
        return value if isinstance(value, Limit) else cls(pace=value)

    def __str__(self) -> str:
        parts = [str(self.pace)] if self.pace else []
        return ",".join([*parts, *(str(budget) for budget in self.budgets)])


@dataclass(frozen=True)
class Warmup:
    """A relay's daily caps while it warms up: ``caps[n]`` on the n-th UTC day from
    ``since`` (the first cap before it), then no cap of its own."""

    caps: tuple[int, ...]
    since: date

    @classmethod
    def parse(cls, schedule: str, since: str | None) -> Warmup:
        if since is None:
            raise ValueError("warmup needs since=YYYY-MM-DD, the schedule's first day")
        try:
            first = date.fromisoformat(since)
        except ValueError:
            raise ValueError(f"since must be a date like 2026-12-01, got {since!r}") from None
        caps = []
        for part in schedule.split(","):
            rate = Rate.parse(part)
            if rate.per_seconds != DAY or rate.count != int(rate.count):
                raise ValueError(f"warmup steps are daily caps like 500/d, got {part.strip()!r}")
            caps.append(int(rate.count))
        return cls(tuple(caps), first)

    @property
    def first_day(self) -> int:
        """The schedule's first day, in days since the epoch (as the script counts them)."""
        return (self.since - date(1970, 1, 1)).days

    def cap_on(self, day: date) -> int | None:
        """The cap on ``day``, or None once the schedule is over."""
        step = max(0, (day - self.since).days)
        return self.caps[step] if step < len(self.caps) else None

    def __str__(self) -> str:
        return ",".join(f"{cap}/d" for cap in self.caps)
