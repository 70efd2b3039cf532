"""Adaptive per-domain limits, shared by the whole fleet through Redis.

A throttled reply (421, 4.7.x, provider "rate limited" texts) from a domain that has a
configured limit halves that domain's rate for every worker (multiplicative decrease, at
most once per ``DECREASE_EVERY``); while sends to it succeed the rate climbs back by
``STEP`` of the configured rate at most once per ``INCREASE_EVERY`` (additive increase),
never above the configured limit. The factor lives in ``{ns}:adaptive``; the rate-limit
script reads it on every take.
"""

from __future__ import annotations

import threading
from importlib.resources import files

import redis
import structlog

from mailfleet.shared.names import Names
from mailfleet.shared.redis_client import REDIS_DOWN, redis_errors

log = structlog.get_logger("mailfleet.worker")
_SCRIPT = files("mailfleet.worker.limits").joinpath("adapt.lua").read_text()
DECREASE = 0.5
STEP = 0.1
FLOOR = 0.05
DECREASE_EVERY_US = 1_000_000
INCREASE_EVERY_US = 1_000_000


class AdaptiveLimits:
    def __init__(self, client: redis.Redis, names: Names, domains: set[str]) -> None:
        self._client = client
        self._domains = domains
        self.key = names.redis_key("adaptive")
        self._changed_at_key = names.redis_key("adaptive", "changed")
        self._script = client.register_script(_SCRIPT)
        self._lock = threading.Lock()
        self._factors: dict[str, float] = {}  # this worker's view; refreshed by the watcher

    def throttled(self, domain: str) -> None:
        if domain in self._domains:
            before = self.factors().get(domain, 1.0)
            factor = self._call(domain, "decrease", DECREASE, DECREASE_EVERY_US)
            if factor < before:
                log.warning("domain_slowed", domain=domain, factor=factor)

    def succeeded(self, domain: str) -> None:
        with self._lock:
            reduced = self._factors.get(domain, 1.0) < 1.0
        if reduced:
            self._call(domain, "increase", STEP, INCREASE_EVERY_US)

    def factors(self) -> dict[str, float]:
        """Every domain's factor (1.0 when not reduced), as this worker last saw it."""
        with self._lock:
            return {domain: self._factors.get(domain, 1.0) for domain in sorted(self._domains)}

    def refresh(self) -> dict[str, float]:
        """Read the fleet's factors from Redis (the watcher thread calls this)."""
        with redis_errors("cannot read adaptive limits"):
            raw = self._client.hgetall(self.key)
        fresh = {_text(domain): float(value) for domain, value in raw.items()}
        with self._lock:
            self._factors = fresh
        return self.factors()

    def _call(self, domain: str, mode: str, amount: float, every_us: int) -> float:
        try:
            result = self._script(
                keys=[self.key, self._changed_at_key],
                args=[domain, mode, amount, FLOOR, every_us],
            )
        except REDIS_DOWN as exc:
            log.warning("adaptive_update_failed", domain=domain, error=str(exc))
            return self.factors().get(domain, 1.0)
        factor = float(_text(result))
        with self._lock:
            self._factors[domain] = factor
        return factor


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
