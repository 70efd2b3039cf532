"""The fleet-wide rate limit: GCRA buckets in Redis, taken several at once in one round trip.

The algorithm lives in ``rate_limit.lua`` (one script, Redis's clock, all or nothing); this
module only names the buckets a job needs and calls the script. Every worker of a
namespace shares the same buckets, so the limit holds however many replicas run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from importlib.resources import files

import redis

from mailfleet.shared.addresses import domain_of
from mailfleet.shared.durations import Rate
from mailfleet.shared.errors import RedisUnavailable
from mailfleet.shared.job import EmailJob, Lane
from mailfleet.shared.names import Names
from mailfleet.shared.redis_client import REDIS_DOWN
from mailfleet.shared.relays import Relay
from mailfleet.shared.settings import Settings

_SCRIPT = files("mailfleet.worker").joinpath("rate_limit.lua").read_text()
_MICROS = 1_000_000


@dataclass(frozen=True)
class Bucket:
    """One limit: ``rate``, holding at most ``burst`` tokens at once, stored at ``key``.

    So in any one-second window at most ``rate + burst`` tokens are handed out, and with
    ``burst`` 1 the tokens are evenly spaced.
    """

    key: str
    label: str
    rate: Rate
    burst: int
    adaptive: str = ""  # the field of this bucket's factor in {ns}:adaptive, if it adapts
    every_job: bool = False  # the global bucket: every job needs it, so waiting can't be dodged

    @property
    def interval_us(self) -> int:
        return max(1, round(_MICROS / self.rate.per_second))

    @property
    def tolerance_us(self) -> int:
        return (self.burst - 1) * self.interval_us

    def spare_for(self, lane: Lane) -> int:
        """Tokens beyond the next one this lane may use. Bulk leaves half the burst to
        transactional mail, so under a bulk backlog a transactional job still finds a token
        at once; the bucket's ceiling (rate + burst) is the same for both."""
        if lane is Lane.TRANSACTIONAL:
            return self.burst - 1
        return self.burst - self.burst // 2 - 1

    def slowed(self, factor: float) -> Bucket:
        """This bucket at ``factor`` of its rate (for reports)."""
        return replace(self, rate=Rate(self.rate.count * factor, self.rate.per_seconds))


def default_burst(rate: Rate) -> int:
    """5 % of a second's worth, at least 1: absorbs scheduling jitter, no real burst."""
    return max(1, math.ceil(rate.per_second * 0.05))


@dataclass(frozen=True)
class Admission:
    granted: bool
    wait_seconds: float
    blocking: Bucket | None = None  # the bucket that needs the longest wait


class RateLimiter:
    """Which buckets apply to a job, and taking one token from each of them atomically."""

    def __init__(self, client: redis.Redis, settings: Settings) -> None:
        self._client = client
        self._names = settings.names
        self._script = client.register_script(_SCRIPT)
        names = settings.names
        self._global = (
            replace(
                self._bucket(names, "global", "global", settings.rate_limit, settings.rate_burst),
                every_job=True,
            )
            if settings.rate_limit
            else None
        )
        self._domains = {
            domain: replace(
                self._bucket(names, f"domain:{domain}", f"domain {domain}", rate, None),
                adaptive=domain,
            )
            for domain, rate in settings.domain_limits.items()
        }
        self._adaptive_key = names.redis_key("adaptive")
        self._relays = {
            relay: self._bucket(
                names, f"relay:{relay.name}", f"relay {relay.name}", relay.rate, None
            )
            for relay in settings.smtp_relays
            if relay.rate is not None
        }
        self._lanes = {
            lane: self._bucket(names, f"lane:{lane.value}", f"lane {lane.value}", rate, None)
            for lane, rate in settings.lane_limits.items()
        }

    @staticmethod
    def _bucket(names: Names, key: str, label: str, rate: Rate, burst: int | None) -> Bucket:
        return Bucket(names.redis_key("rate", key), label, rate, burst or default_burst(rate))

    @property
    def configured(self) -> bool:
        return bool(self._global or self._domains or self._lanes or self._relays)

    def buckets_for(
        self, job: EmailJob, recipients: list[str], relay: Relay | None = None
    ) -> list[Bucket]:
        """Every bucket a send of ``job`` to ``recipients`` through ``relay`` takes from."""
        buckets = [self._global] if self._global else []
        domains = sorted({domain_of(rcpt) for rcpt in recipients})
        buckets += [self._domains[domain] for domain in domains if domain in self._domains]
        if job.lane in self._lanes:
            buckets.append(self._lanes[job.lane])
        if relay is not None and relay in self._relays:
            buckets.append(self._relays[relay])
        return buckets

    @property
    def relay_independent(self) -> bool:
        """No relay has a limit of its own: a job's buckets are known before its relay is."""
        return not self._relays

    def try_take(self, buckets: list[Bucket], lane: Lane = Lane.TRANSACTIONAL) -> Admission:
        """Take one token from every bucket, or none and say how long to wait."""
        if not buckets:
            return Admission(True, 0.0)
        keys, args = self._arguments(buckets, lane)
        try:
            granted, wait_us, blocking = self._script(keys=keys, args=args)
        except REDIS_DOWN as exc:
            raise RedisUnavailable(f"cannot reach the rate limiter: {exc}") from exc
        blocker = buckets[int(blocking) - 1] if blocking else None
        return Admission(bool(granted), int(wait_us) / _MICROS, blocker)

    def try_take_many(self, requests: Sequence[tuple[list[Bucket], Lane]]) -> list[bool]:
        """:meth:`try_take` for several jobs in one round trip (the script calls pipelined,
        each all or nothing, in order): whether each got its tokens."""
        if not requests:
            return []
        pipeline = self._client.pipeline(transaction=False)
        for buckets, lane in requests:
            keys, args = self._arguments(buckets, lane)
            pipeline.evalsha(self._script.sha, len(keys), *keys, *args)
        try:
            answers = pipeline.execute()
        except redis.exceptions.NoScriptError:
            # Not loaded (a restarted Redis): nothing ran. Load it through one plain call.
            return [self.try_take(buckets, lane).granted for buckets, lane in requests]
        except REDIS_DOWN as exc:
            raise RedisUnavailable(f"cannot reach the rate limiter: {exc}") from exc
        return [bool(answer[0]) for answer in answers]

    def _arguments(self, buckets: list[Bucket], lane: Lane) -> tuple[list[str], list[int | str]]:
        """The script's keys and arguments for taking one token from each of ``buckets``."""
        args: list[int | str] = []
        for bucket in buckets:
            args += [bucket.interval_us, bucket.spare_for(lane), bucket.adaptive]
        return [bucket.key for bucket in buckets] + [self._adaptive_key], args

    def state(self, bucket: Bucket) -> tuple[float, float]:
        """``(factor, seconds until a token)``: the adaptive factor of ``bucket`` (1.0 when
        it does not adapt) and how long until it would grant one now."""
        try:
            now_s, now_us = self._client.time()
            raw = self._client.get(bucket.key)
            factor_raw = (
                self._client.hget(self._adaptive_key, bucket.adaptive) if bucket.adaptive else None
            )
        except REDIS_DOWN as exc:
            raise RedisUnavailable(f"cannot reach the rate limiter: {exc}") from exc
        factor = float(factor_raw) if factor_raw is not None else 1.0
        now = now_s * _MICROS + now_us
        tat = int(raw) if raw is not None else now
        tolerance = bucket.tolerance_us / factor
        return factor, max(0.0, tat - tolerance - now) / _MICROS
