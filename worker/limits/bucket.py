"""One rate limit: a GCRA bucket and the sliding window that keeps its promise at the relay.

The relay counts a message when its transaction ends, a send's duration after the token was
taken. So besides the GCRA each bucket keeps a sliding window of its recent grants a little
longer than a second: sends may then reach the relay that much apart in time and still no
second there holds more than rate + burst. The script that enforces both is ``gcra.lua``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from mailfleet.shared.durations import Rate
from mailfleet.shared.job import Lane

_MICROS = 1_000_000


@dataclass(frozen=True)
class Bucket:
    """One limit: ``rate``, holding at most ``burst`` tokens at once, stored at ``key``.

    Tokens come from a GCRA: up to ``burst`` at once, refilled at ``rate``; with ``burst`` 1
    they are evenly spaced. On top of it any :attr:`window_us` (one second plus the
    tolerance, rounded down to whole intervals) holds at most :attr:`window_count` grants
    (rate + burst): a burst is paid back within that span. So a second at the relay holds at
    most rate + burst messages as long as no send takes more than :attr:`spread_us` longer
    from its token to the end of DATA than another; each message that took longer can add
    one to the second it lands in.
    """

    key: str
    label: str
    rate: Rate
    burst: int
    adaptive: str = ""  # the field of this bucket's factor in {ns}:adaptive, if it adapts
    every_job: bool = False  # the global bucket: every job needs it, so waiting can't be dodged
    # A budget (see budget_bucket) counts sends per window instead of spacing them: its cap,
    # or a warm-up's cap per day from first_day (days since the epoch); () for a pace.
    caps: tuple[int, ...] = ()
    window_s: int = 0
    first_day: int = 0
    per_relay: bool = False  # a relay's own budget: another relay of the pool may have room

    @property
    def is_budget(self) -> bool:
        return bool(self.caps)

    def script_args(self, lane: Lane) -> list[int | str]:
        """This bucket's five arguments to ``gcra.lua``."""
        if self.is_budget:
            return [0, self.window_s, ",".join(map(str, self.caps)), self.first_day, 0]
        spare = self.spare_for(lane)
        return [self.interval_us, spare, self.adaptive, self.burst, self.spare_for(Lane.BULK)]

    @property
    def interval_us(self) -> int:
        return max(1, round(_MICROS / self.rate.per_second))

    @property
    def tolerance_us(self) -> int:
        return (self.burst - 1) * self.interval_us

    @property
    def recent_key(self) -> str:
        """The list of this bucket's recent grants (its window), newest first."""
        return f"{self.key}:recent"

    @property
    def window_count(self) -> int:
        """Rate + burst, rounded down: the most grants (and relay arrivals) in one second."""
        return self.window_at(1.0)[0]

    @property
    def window_us(self) -> int:
        """The span that holds at most :attr:`window_count` grants; 0 for no window (burst
        <= 2: the GCRA alone keeps them as far apart)."""
        return round(self.window_at(1.0)[1])

    @property
    def spread_us(self) -> int:
        """How much longer than another's a send may take from its token to the end of DATA
        without lifting a second at the relay above :attr:`window_count`: the span that
        holds at most that many grants, less the second."""
        count = self.window_count
        span = self.window_us or (count - self.burst + 1) * self.interval_us
        return span - _MICROS

    def window_at(self, factor: float) -> tuple[int, float]:
        """``(count, span_us)`` of the window at ``factor`` of the rate, as the script has it."""
        interval = self.interval_us / factor
        count = math.floor(_MICROS / interval) + self.burst
        return count, (count - 1) * interval if self.burst > 2 else 0.0

    def spare_for(self, lane: Lane) -> int:
        """Tokens beyond the next one this lane may use. Bulk leaves half the burst to
        transactional mail, so under a bulk backlog a transactional job still finds a token
        at once (unless bulk has just filled the window: then at its next free place); the
        bucket's ceiling (rate + burst) is the same for both."""
        if lane is Lane.TRANSACTIONAL:
            return self.burst - 1
        return self.burst - self.burst // 2 - 1

    def slowed(self, factor: float) -> Bucket:
        """This bucket at ``factor`` of its rate (for reports)."""
        return replace(self, rate=Rate(self.rate.count * factor, self.rate.per_seconds))


def budget_bucket(
    key: str,
    label: str,
    window_s: int,
    caps: tuple[int, ...],
    first_day: int = 0,
    *,
    every_job: bool = False,
    per_relay: bool = False,
) -> Bucket:
    """A budget: at most ``caps`` sends per calendar window of ``window_s`` (an hour or a
    UTC day, on Redis's clock), refilled when the next window starts. Several caps are a
    warm-up: one per day from ``first_day``, and no cap once they are used up."""
    return Bucket(
        key,
        label,
        Rate(caps[0], window_s),
        burst=caps[0],
        every_job=every_job,
        caps=caps,
        window_s=window_s,
        first_day=first_day,
        per_relay=per_relay,
    )


def default_burst(rate: Rate) -> int:
    """5 % of a second's worth, at least 1: absorbs scheduling jitter, no real burst."""
    return max(1, math.ceil(rate.per_second * 0.05))
