"""Holding work while Redis is away: retry with backoff, never proceed without it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

import structlog

from mailfleet.shared.errors import RedisUnavailable

log = structlog.get_logger("mailfleet.worker")
T = TypeVar("T")


class RedisGate:
    """Runs Redis-dependent steps; while Redis is down, waits (logging once) instead of sending."""

    def __init__(self, stopping: threading.Event, max_backoff: float = 5.0) -> None:
        self._stopping = stopping
        self._max_backoff = max_backoff
        self._lock = threading.Lock()
        self._down = False

    @property
    def healthy(self) -> bool:
        return not self._down

    def run(self, step: Callable[[], T]) -> T | None:
        """``step()``'s result once Redis answers; ``None`` if the worker stops first."""
        backoff = 0.1
        while True:
            try:
                result = step()
            except RedisUnavailable as exc:
                self._note(down=True, error=str(exc))
                if self._stopping.wait(backoff):
                    return None
                backoff = min(backoff * 2, self._max_backoff)
                continue
            self._note(down=False)
            return result

    def recovered(self) -> None:
        """Redis answered a health ping: healthy again even if no job has tried it yet."""
        self._note(down=False)

    def _note(self, *, down: bool, error: str = "") -> None:
        with self._lock:
            if down == self._down:
                return
            self._down = down
        if down:
            log.error("redis_unavailable", error=error, action="holding messages, not sending")
        else:
            log.info("redis_recovered")
