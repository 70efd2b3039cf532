"""The dead letters the table showed lately, kept so that a letter's own page needs no read.

A queue has no index: finding one letter means reading from the head up to it, and a quorum
queue of RabbitMQ 3.x puts every letter a read handed back at its tail, so a letter just
shown in the table is the one the queue reaches last. Its page therefore shows the letter
as the table read it (a dead letter never changes; it may only be replayed or purged since,
which the page says), and reads the queue only for a letter the table did not show, and
then no further than a page's budget from the head. Bounded in count and age, and letters
too large to keep are left to that read.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable

from mailfleet.producer.ops.dlq.letter import DeadLetter

MAX_LETTERS = 1000
MAX_AGE = 600.0  # seconds
MAX_BODY = 1024 * 1024  # bytes of a letter kept


class SeenLetters:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._letters: OrderedDict[str, tuple[list[DeadLetter], float]] = OrderedDict()

    def keep(self, letters: Iterable[DeadLetter]) -> None:
        """Remember ``letters``, as a page just read them."""
        now = self._clock()
        fresh: dict[str, list[DeadLetter]] = {}
        for letter in letters:
            if len(letter.body) <= MAX_BODY:
                fresh.setdefault(letter.id, []).append(letter)
        with self._lock:
            for job_id, found in fresh.items():
                self._letters.pop(job_id, None)
                self._letters[job_id] = (found, now)
            while len(self._letters) > MAX_LETTERS:
                self._letters.popitem(last=False)

    def get(self, job_id: str) -> tuple[list[DeadLetter], float] | None:
        """The letters of ``job_id`` a page read, and how many seconds ago; None if none did
        lately."""
        now = self._clock()
        with self._lock:
            entry = self._letters.get(job_id)
            if entry is None or now - entry[1] > MAX_AGE:
                self._letters.pop(job_id, None)
                return None
            return entry[0], now - entry[1]
