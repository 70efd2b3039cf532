"""The sender domains whose bulk mail the complaint guard holds back, as this worker last
read them. The senders share one reading and refresh it at most once a second, in a bulk
batch's round trip: a pause reaches the fleet within a second, and a busy worker does not
pay for the read in every batch."""

from __future__ import annotations

import time
from collections.abc import Callable

REFRESH_SECONDS = 1.0


class PausedSenders:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.domains: frozenset[str] = frozenset()
        self._clock = clock
        self._next_read = 0.0

    def due(self) -> bool:
        """Whether this batch should read them; claims the read for it."""
        now = self._clock()
        if now < self._next_read:
            return False
        self._next_read = now + REFRESH_SECONDS
        return True

    def update(self, domains: set[str]) -> None:
        self.domains = frozenset(domains)
