"""The complaint guard: a sender domain whose complaint rate over the last 24 hours passes
``MAILFLEET_COMPLAINT_PAUSE`` (with at least ``MAILFLEET_COMPLAINT_MIN_SENDS`` sends) has its
bulk mail paused fleet-wide; transactional mail keeps flowing.

The bounce processor judges a domain after each complaint; the workers read the paused
domains in the round trip they already make per batch, and that read re-judges a pause
every few minutes, so a pause ends by itself once the rate falls back under the
threshold (older hours leave the window, transactional sends keep counting). An operator
ends it at once with ``mailfleet resume DOMAIN``; the next complaint judges it again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.resources import files

import redis

from mailfleet.shared.redis_client import redis_errors
from mailfleet.shared.reports import ReportKeys
from mailfleet.shared.round_trip import ScriptCall

_SCRIPT = files("mailfleet.shared").joinpath("complaint_guard.lua").read_text()
RECHECK_SECONDS = 300.0


@dataclass(frozen=True)
class Pause:
    domain: str
    rate: float
    sent: int
    complained: int


@dataclass(frozen=True)
class Verdict:
    paused: bool
    sent: int
    complained: int


class ComplaintGuard:
    def __init__(
        self,
        client: redis.Redis,
        keys: ReportKeys,
        threshold: float,
        min_sends: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._keys = keys
        self._threshold = threshold
        self._min_sends = min_sends
        self._clock = clock
        self._script = client.register_script(_SCRIPT)
        self.key = keys.names.redis_key("paused")

    def evaluate(self, domain: str) -> Verdict:
        """Judge ``domain`` now: pause its bulk mail, or lift the pause."""
        call = self._call("evaluate", domain)
        with redis_errors("cannot run the complaint guard"):
            paused, sent, complained = self._script(keys=call.keys, args=call.args)
        return Verdict(bool(paused), int(sent), int(complained))

    def read_call(self) -> ScriptCall:
        """The call that answers the paused domains, for a batch's round trip."""
        return self._call("read")

    @staticmethod
    def paused_of(answer: list[bytes | str]) -> set[str]:
        return {item.decode() if isinstance(item, bytes) else str(item) for item in answer}

    def pauses(self) -> list[Pause]:
        """Every pause in force, as ``mailfleet stats`` and ``explain`` show them."""
        with redis_errors("cannot read the complaint guard"):
            raw = self._client.hgetall(self.key)
        result = []
        for domain, entry in raw.items():
            rate, sent, complained, _ = (
                entry.decode() if isinstance(entry, bytes) else entry
            ).split()
            name = domain.decode() if isinstance(domain, bytes) else str(domain)
            result.append(Pause(name, float(rate), int(sent), int(complained)))
        return sorted(result, key=lambda pause: pause.domain)

    def resume(self, domain: str) -> bool:
        """Lift ``domain``'s pause; True if it was paused."""
        with redis_errors("cannot write the complaint guard"):
            return bool(self._client.hdel(self.key, domain.lower()))

    def _call(self, mode: str, *extra: str) -> ScriptCall:
        now = self._clock()
        hours = self._keys.last_hours(datetime.fromtimestamp(now, UTC))
        args: list[str | int] = [
            mode,
            repr(self._threshold),
            self._min_sends,
            repr(now),
            repr(RECHECK_SECONDS),
            *extra,
        ]
        return ScriptCall(self._script, [self.key, *hours], args)
