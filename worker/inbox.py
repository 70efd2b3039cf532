"""A message as the worker holds it, the local buffer that serves transactional first, and
what becomes of a delivery that goes back unsent on its turn."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from enum import Enum
from functools import cached_property
from typing import Any

import pika

from mailfleet.shared.job import Lane
from mailfleet.shared.names import ATTEMPT, DELIVERY_COUNT, RECIPIENTS, read_recipients


@dataclass(frozen=True)
class Delivery:
    """One unacked message; ``generation`` names the consumer connection it came on."""

    lane: Lane
    delivery_tag: int
    generation: int
    body: bytes
    properties: pika.BasicProperties

    @cached_property
    def headers(self) -> dict[str, Any]:
        """The message's headers (read several times per message: computed once)."""
        return dict(self.properties.headers or {})

    @property
    def attempt(self) -> int:
        value = self.headers.get(ATTEMPT, 1)
        return value if isinstance(value, int) and value >= 1 else 1

    @property
    def delivery_count(self) -> int:
        """How often the broker handed this message out before (``x-delivery-count``)."""
        value = self.headers.get(DELIVERY_COUNT, 0)
        return value if isinstance(value, int) else 0

    @property
    def only_recipients(self) -> list[str] | None:
        """The recipients still to try, when an earlier attempt settled the others."""
        return read_recipients(self.headers.get(RECIPIENTS))


class GiveBack(Enum):
    """Why a delivery goes back unsent on its turn, unsettled by its sender."""

    PARKED = "parked"  # in the inbox again, until its rate-limit bucket frees up
    STOPPING = "stopping"  # the worker is stopping while it waited: to be requeued
    STALE = "stale"  # its connection is gone: the broker has requeued it already


@dataclass(frozen=True)
class OverBudget:
    """A budget the delivery needs is spent: it waits in a delay tier, using no attempt,
    until about ``wait_seconds`` from now, when the budget's next window starts."""

    wait_seconds: float
    budget: str  # the budget's label, for logs
    per_relay: bool = False  # only its relay's: another relay of the pool may have room


class Inbox:
    """Deliveries waiting for a sender thread: transactional before bulk, FIFO within a lane.

    A delivery may be parked until a moment (its rate-limit bucket is busy); it keeps its
    place at the back of its lane and is not taken before then.
    """

    def __init__(self) -> None:
        self._lanes: dict[Lane, deque[tuple[float, Delivery]]] = {lane: deque() for lane in Lane}
        lock = threading.RLock()
        self._changed = threading.Condition(lock)  # senders waiting for work
        # Bulk senders waiting for a token, to step aside when transactional mail arrives.
        self._transactional = threading.Condition(lock)
        self._in_flight = 0

    def put(self, delivery: Delivery) -> None:
        """Queue a fresh delivery: ready now, so one waiting sender is enough to wake."""
        with self._changed:
            self._lanes[delivery.lane].append((0.0, delivery))
            self._changed.notify()
            if delivery.lane is Lane.TRANSACTIONAL:
                self._transactional.notify_all()

    def park(self, delivery: Delivery, ready_at: float) -> None:
        """Queue ``delivery`` (again), not to be taken before ``ready_at`` (monotonic)."""
        with self._changed:
            self._lanes[delivery.lane].append((ready_at, delivery))
            self._changed.notify_all()  # every waiter recomputes how long to sleep
            self._transactional.notify_all()

    def take_batch(self, limit: int, timeout: float) -> list[Delivery]:
        """Up to ``limit`` ready deliveries, transactional first (each counted in flight until
        ``done``); empty after ``timeout`` with none ready. A sender that takes several at
        once pays for one Redis round trip and one settle wake-up for all of them."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                now = time.monotonic()
                taken: list[Delivery] = []
                while len(taken) < limit:
                    delivery = self._pop_ready(now)
                    if delivery is None:
                        break
                    taken.append(delivery)
                if taken:
                    self._in_flight += len(taken)
                    if self._any_ready(now):
                        self._changed.notify()  # more left: pass the wake-up on
                    return taken
                if now >= deadline:
                    return []
                next_ready = min(
                    (ready for lane in self._lanes.values() for ready, _ in lane), default=deadline
                )
                self._changed.wait(max(0.0, min(deadline, next_ready) - now))

    def done(self, count: int = 1) -> None:
        with self._changed:
            self._in_flight -= count

    def ready(self) -> bool:
        """Whether a delivery is waiting that could be taken right now."""
        now = time.monotonic()
        with self._changed:
            return self._any_ready(now)

    def _any_ready(self, now: float) -> bool:
        return any(ready <= now for lane in self._lanes.values() for ready, _ in lane)

    def wait_for_transactional(self, timeout: float) -> bool:
        """True as soon as a transactional delivery is ready; False after ``timeout``."""

        def ready() -> bool:
            now = time.monotonic()
            return any(at <= now for at, _ in self._lanes[Lane.TRANSACTIONAL])

        with self._changed:
            return self._transactional.wait_for(ready, timeout)

    def drain(self) -> list[Delivery]:
        """Remove and return every delivery not yet taken (at shutdown, to requeue them)."""
        with self._changed:
            drained = [delivery for lane in Lane for _, delivery in self._lanes[lane]]
            for lane in Lane:
                self._lanes[lane].clear()
            return drained

    def _pop_ready(self, now: float) -> Delivery | None:
        for lane in Lane:  # transactional first
            entries = self._lanes[lane]
            for index, (ready_at, delivery) in enumerate(entries):
                if ready_at <= now:
                    del entries[index]
                    return delivery
        return None

    @property
    def waiting(self) -> int:
        with self._changed:
            return sum(len(lane) for lane in self._lanes.values())

    @property
    def in_flight(self) -> int:
        with self._changed:
            return self._in_flight
