"""A message as the worker holds it, and the local buffer that serves transactional first."""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

import pika

from mailfleet.shared.job import Lane
from mailfleet.shared.names import ATTEMPT, RECIPIENTS


@dataclass(frozen=True)
class Delivery:
    """One unacked message; ``generation`` names the consumer connection it came on."""

    lane: Lane
    delivery_tag: int
    generation: int
    body: bytes
    properties: pika.BasicProperties

    @property
    def headers(self) -> dict[str, Any]:
        return dict(self.properties.headers or {})

    @property
    def attempt(self) -> int:
        value = self.headers.get(ATTEMPT, 1)
        return value if isinstance(value, int) and value >= 1 else 1

    @property
    def delivery_count(self) -> int:
        """How often the broker handed this message out before (``x-delivery-count``)."""
        value = self.headers.get("x-delivery-count", 0)
        return value if isinstance(value, int) else 0

    @property
    def only_recipients(self) -> list[str] | None:
        """The recipients still to try, when an earlier attempt settled the others."""
        value = self.headers.get(RECIPIENTS)
        if isinstance(value, bytes):
            value = value.decode()
        if not isinstance(value, str):
            return None
        try:
            recipients = json.loads(value)
        except json.JSONDecodeError:
            return None
        return [str(item) for item in recipients] if isinstance(recipients, list) else None


class Inbox:
    """Deliveries waiting for a sender thread: transactional before bulk, FIFO within a lane."""

    def __init__(self) -> None:
        self._lanes: dict[Lane, deque[Delivery]] = {lane: deque() for lane in Lane}
        self._changed = threading.Condition()
        self._in_flight = 0

    def put(self, delivery: Delivery) -> None:
        with self._changed:
            self._lanes[delivery.lane].append(delivery)
            self._changed.notify_all()

    def take(self, timeout: float) -> Delivery | None:
        """The next delivery to work on (counted in flight until ``done``), or None."""
        with self._changed:
            if not self._changed.wait_for(self._any_waiting, timeout=timeout):
                return None
            lane = Lane.TRANSACTIONAL if self._lanes[Lane.TRANSACTIONAL] else Lane.BULK
            self._in_flight += 1
            return self._lanes[lane].popleft()

    def give_back(self, delivery: Delivery) -> None:
        """Return a taken delivery to the front of its lane (it stays unacked); ``done`` follows."""
        with self._changed:
            self._lanes[delivery.lane].appendleft(delivery)
            self._changed.notify_all()

    def done(self) -> None:
        with self._changed:
            self._in_flight -= 1

    def wait_for_transactional(self, timeout: float) -> bool:
        """True as soon as a transactional delivery is waiting; False after ``timeout``."""
        with self._changed:
            return self._changed.wait_for(lambda: bool(self._lanes[Lane.TRANSACTIONAL]), timeout)

    def drain(self) -> list[Delivery]:
        """Remove and return every delivery not yet taken (at shutdown, to requeue them)."""
        with self._changed:
            drained = [delivery for lane in Lane for delivery in self._lanes[lane]]
            for lane in Lane:
                self._lanes[lane].clear()
            return drained

    def _any_waiting(self) -> bool:
        return any(self._lanes.values())

    @property
    def waiting(self) -> int:
        with self._changed:
            return sum(len(lane) for lane in self._lanes.values())

    @property
    def in_flight(self) -> int:
        with self._changed:
            return self._in_flight
