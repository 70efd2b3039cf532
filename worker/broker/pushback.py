"""A broker that pushes back: RabbitMQ's memory or disk alarm blocks publishing connections.

:class:`Pushback` is what the worker knows of it, shared by its threads: the republisher's
connections report ``connection.blocked`` and ``unblocked`` here, and a republish that
timed out while blocked leaves it set. While it is set the senders take no new deliveries
(each would end in a retry or dead letter that cannot be published); the republisher's
probe clears it once a publish goes through again.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pika


class Pushback:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reason: str | None = None
        self._since = 0.0

    @property
    def reason(self) -> str | None:
        """Why the broker blocks us ("low on memory"), or None while it does not."""
        with self._lock:
            return self._reason

    @property
    def blocked_for(self) -> float:
        with self._lock:
            return time.monotonic() - self._since if self._reason is not None else 0.0

    def blocked(self, reason: str) -> None:
        with self._lock:
            if self._reason is None:
                self._since = time.monotonic()
            self._reason = reason or "no reason given"

    def cleared(self) -> None:
        with self._lock:
            self._reason = None

    def watch(self, connection: pika.BlockingConnection) -> None:
        """Hear ``connection``'s blocked / unblocked frames as they are read. The blocking
        adapter's own callbacks run only between its calls, too late for a publish that
        waits on its confirm; the connection underneath calls these at once."""
        impl: Any = connection._impl  # type: ignore[attr-defined]
        impl.add_on_connection_blocked_callback(
            lambda _connection, frame: self.blocked(str(frame.method.reason))
        )
        impl.add_on_connection_unblocked_callback(lambda _connection, _frame: self.cleared())
