"""A message as the worker holds it, and the local buffer that serves transactional first."""

from __future__ import annotations

import itertools
import json
import queue
import threading
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


_LANE_ORDER = {Lane.TRANSACTIONAL: 0, Lane.BULK: 1}


class Inbox:
    """Deliveries waiting for a sender thread, transactional before bulk, FIFO within a lane."""

    def __init__(self) -> None:
        self._queue: queue.PriorityQueue[tuple[int, int, Delivery]] = queue.PriorityQueue()
        self._sequence = itertools.count()
        self._lock = threading.Lock()
        self._in_flight = 0

    def put(self, delivery: Delivery) -> None:
        self._queue.put((_LANE_ORDER[delivery.lane], next(self._sequence), delivery))

    def take(self, timeout: float) -> Delivery | None:
        """The next delivery to work on (counted in flight until ``done``), or None."""
        try:
            _, _, delivery = self._queue.get(timeout=timeout)
        except queue.Empty:
            return None
        with self._lock:
            self._in_flight += 1
        return delivery

    def done(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def drain(self) -> list[Delivery]:
        """Remove and return every delivery not yet taken (at shutdown, to requeue them)."""
        drained = []
        while True:
            try:
                drained.append(self._queue.get_nowait()[2])
            except queue.Empty:
                return drained

    @property
    def waiting(self) -> int:
        return self._queue.qsize()

    @property
    def in_flight(self) -> int:
        with self._lock:
            return self._in_flight
