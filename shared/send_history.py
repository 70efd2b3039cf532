"""The send rate over the last minutes: recipients accepted per 10-second slot, in Redis.

Workers ``INCRBY {ns}:stats:delivered:<slot>`` in the same write as the sent mark (no round
trip of its own), each slot key expiring after :data:`KEEP_SECONDS`; the dashboard reads the
last :data:`WINDOW_SECONDS` with one ``MGET``. It survives a dashboard restart, unlike a
history kept in the dashboard's memory.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from mailfleet.shared.names import Names
from mailfleet.shared.redis_client import redis_errors

SLOT_SECONDS = 10
WINDOW_SECONDS = 15 * 60
KEEP_SECONDS = WINDOW_SECONDS + 5 * 60  # outlives the window, for a clock a little off

Command = tuple[str | int, ...]


def slot_of(at: float) -> int:
    return int(at // SLOT_SECONDS)


def record_commands(names: Names, recipients: int, at: float) -> list[Command]:
    """The two commands that count ``recipients`` accepted at ``at`` in their slot."""
    key = names.delivered_slot(slot_of(at))
    return [("INCRBY", key, recipients), ("EXPIRE", key, KEEP_SECONDS)]


@dataclass(frozen=True)
class RatePoint:
    start: float  # the slot's start, seconds since the epoch
    delivered: int

    @property
    def per_second(self) -> float:
        return self.delivered / SLOT_SECONDS


def read_history(client: redis.Redis, names: Names, now: float) -> list[RatePoint]:
    """The slots of the last :data:`WINDOW_SECONDS` up to ``now``, oldest first (the last
    one, which ``now`` falls in, still filling); an absent slot counts 0."""
    last = slot_of(now)
    slots = list(range(last - WINDOW_SECONDS // SLOT_SECONDS + 1, last + 1))
    with redis_errors("cannot read the send history"):
        values = client.mget([names.delivered_slot(slot) for slot in slots])
    return [
        RatePoint(slot * SLOT_SECONDS, int(value) if value is not None else 0)
        for slot, value in zip(slots, values, strict=True)
    ]
