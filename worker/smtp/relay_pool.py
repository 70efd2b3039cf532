"""Choosing a relay: by weight, among those whose circuit breaker is closed.

A breaker opens after ``MAILFLEET_BREAKER_FAILURES`` relay-level failures in a row
(connection refused or dropped, timeout, 421) and the relay is skipped; after
``MAILFLEET_BREAKER_COOLDOWN`` one send probes it (half-open): success closes the breaker,
failure opens it again. State is per worker process and shared by its sender threads.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from enum import StrEnum

import structlog

from mailfleet.shared.relays import Relay

log = structlog.get_logger("mailfleet.worker")


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass
class _Breaker:
    state: BreakerState = BreakerState.CLOSED
    failures: int = 0
    opened_at: float = 0.0
    probing: bool = False


class RelayPool:
    def __init__(
        self,
        relays: list[Relay],
        failures_to_open: int,
        cooldown: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._relays = relays
        self._failures_to_open = failures_to_open
        self._cooldown = cooldown
        self._clock = clock
        self._lock = threading.Lock()
        self._breakers = {relay: _Breaker() for relay in relays}

    def choose(
        self, exclude: Collection[Relay] = (), preferred: Relay | None = None
    ) -> Relay | None:
        """A relay to send through, by weight among the usable ones (``preferred``, drawn
        earlier, if it still is); None if none is."""
        with self._lock:
            usable = [
                relay for relay in self._relays if relay not in exclude and self._usable(relay)
            ]
            if not usable:
                return None
            if preferred in usable:
                relay = preferred
            else:
                relay = random.choices(usable, [relay.weight for relay in usable])[0]
            breaker = self._breakers[relay]
            if breaker.state is BreakerState.HALF_OPEN:
                breaker.probing = True  # this send is the probe; others keep away
            return relay

    def draw(self) -> Relay | None:
        """A relay by weight among the usable ones, without claiming a half-open probe: the
        next email's choice, made early to see whether it can be chained on this relay. It
        is then that email's choice either way (``choose(preferred=...)``), so chains keep
        the weights."""
        with self._lock:
            if len(self._relays) == 1:  # the common case: no weights to draw by
                only = self._relays[0]
                return only if self._usable(only) else None
            usable = [relay for relay in self._relays if self._usable(relay)]
            if not usable:
                return None
            return random.choices(usable, [relay.weight for relay in usable])[0]

    def record(self, relay: Relay, *, failed: bool) -> None:
        with self._lock:
            breaker = self._breakers[relay]
            breaker.probing = False
            if not failed:
                if breaker.state is not BreakerState.CLOSED:
                    log.info("relay_recovered", relay=relay.name)
                breaker.state, breaker.failures = BreakerState.CLOSED, 0
                return
            breaker.failures += 1
            reopen = breaker.state is BreakerState.HALF_OPEN
            if reopen or (
                breaker.state is BreakerState.CLOSED and breaker.failures >= self._failures_to_open
            ):
                breaker.state, breaker.opened_at = BreakerState.OPEN, self._clock()
                log.warning(
                    "relay_opened",
                    relay=relay.name,
                    failures=breaker.failures,
                    retry_in_s=self._cooldown,
                )

    def release(self, relay: Relay) -> None:
        """The chosen relay was not used after all (no token, stopping): free its probe."""
        with self._lock:
            self._breakers[relay].probing = False

    def states(self) -> dict[str, BreakerState]:
        with self._lock:
            for relay in self._relays:
                self._usable(relay)  # let cool-downs that ended show as half-open
            return {relay.name: self._breakers[relay].state for relay in self._relays}

    def _usable(self, relay: Relay) -> bool:
        breaker = self._breakers[relay]
        if (
            breaker.state is BreakerState.OPEN
            and self._clock() - breaker.opened_at >= self._cooldown
        ):
            breaker.state = BreakerState.HALF_OPEN
        if breaker.state is BreakerState.HALF_OPEN:
            return not breaker.probing
        return breaker.state is BreakerState.CLOSED
