"""The fleet-wide rate limit: GCRA buckets in Redis, taken several at once in one round trip.

The algorithm lives in ``gcra.lua`` (one script, Redis's clock, all or nothing); this
module only names the buckets a job needs and calls the script. Every worker of a
namespace shares the same buckets, so the limit holds however many replicas run.

The relay counts a message when its transaction ends, a send's duration after the token was
taken. So besides the GCRA each bucket keeps a sliding window of its recent grants a little
longer than a second (see :class:`Bucket`): sends may then reach the relay that much apart
in time and still no second there holds more than rate + burst.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from importlib.resources import files

import redis

from mailfleet.shared.addresses import domain_of
from mailfleet.shared.durations import Rate
from mailfleet.shared.job import EmailJob, Lane
from mailfleet.shared.names import Names
from mailfleet.shared.redis_client import redis_errors
from mailfleet.shared.redis_ha import follow_moved, slot_client
from mailfleet.shared.relays import Relay
from mailfleet.shared.round_trip import ScriptCall
from mailfleet.shared.settings import Settings
from mailfleet.worker.limits.bucket import Bucket, default_burst

_SCRIPT = files("mailfleet.worker.limits").joinpath("gcra.lua").read_text()
_MICROS = 1_000_000
_UNREACHABLE = "cannot reach the rate limiter"


@dataclass(frozen=True)
class TokenGrant:
    granted: bool
    wait_seconds: float
    blocking: Bucket | None = None  # the bucket that needs the longest wait
    at_us: int = 0  # Redis's clock when the script answered (0: no bucket, no script)


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

    def configured_buckets(self) -> list[Bucket]:
        """Every bucket the settings name: the global one, per domain, per lane, per relay."""
        buckets = [self._global] if self._global else []
        buckets += [self._domains[domain] for domain in sorted(self._domains)]
        buckets += [self._lanes[lane] for lane in Lane if lane in self._lanes]
        return buckets + list(self._relays.values())

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

    def try_take(self, buckets: list[Bucket], lane: Lane = Lane.TRANSACTIONAL) -> TokenGrant:
        """Take one token from every bucket, or none and say how long to wait."""
        if not buckets:
            return TokenGrant(True, 0.0)
        keys, args = self._arguments(buckets, lane)
        with redis_errors(_UNREACHABLE):
            answer = self._script(keys=keys, args=args)
        return _admission(buckets, answer)

    def try_take_many(self, requests: Sequence[tuple[list[Bucket], Lane]]) -> list[TokenGrant]:
        """:meth:`try_take` for several jobs in one round trip (the script calls pipelined,
        each all or nothing, in order): whether each got its tokens."""
        if not requests:
            return []
        first_key = self._arguments(requests[0][0], requests[0][1])[0][0]
        pipeline = slot_client(self._client, first_key).pipeline(transaction=False)
        for buckets, lane in requests:
            keys, args = self._arguments(buckets, lane)
            pipeline.evalsha(self._script.sha, len(keys), *keys, *args)
        with redis_errors(_UNREACHABLE):
            try:
                answers = pipeline.execute()
            except redis.exceptions.NoScriptError:
                # Not loaded (a restarted Redis): nothing ran. Load it through one plain call.
                return [self.try_take(buckets, lane) for buckets, lane in requests]
            except redis.exceptions.ResponseError as exc:
                follow_moved(self._client, exc)
                raise
        return [
            _admission(buckets, answer)
            for (buckets, _), answer in zip(requests, answers, strict=True)
        ]

    def take_call(self, buckets: list[Bucket], lane: Lane, tokens: int) -> ScriptCall:
        """The script call that takes ``tokens`` tokens from every bucket at once, all or
        none (a batch's lease when its jobs share their buckets), to run with others; its
        answer is read with :meth:`answer`."""
        keys, args = self._arguments(buckets, lane)
        return ScriptCall(self._script, keys, [*args, tokens])

    @staticmethod
    def answer(buckets: list[Bucket], raw: list[int]) -> TokenGrant:
        """A take script's raw answer for ``buckets``."""
        return _admission(buckets, raw)

    def _arguments(self, buckets: list[Bucket], lane: Lane) -> tuple[list[str], list[int | str]]:
        """The script's keys and arguments for taking one token from each of ``buckets``."""
        args: list[int | str] = []
        for bucket in buckets:
            args += [bucket.interval_us, bucket.spare_for(lane), bucket.adaptive]
            args += [bucket.burst, bucket.spare_for(Lane.BULK)]
        keys = [key for bucket in buckets for key in (bucket.key, bucket.recent_key)]
        return [*keys, self._adaptive_key], args

    def state(self, bucket: Bucket) -> tuple[float, float]:
        """``(factor, seconds until a token)``: the adaptive factor of ``bucket`` (1.0 when
        it does not adapt) and how long until it would grant a transactional job one now."""
        with redis_errors(_UNREACHABLE):
            now_s, now_us = self._client.time()
            raw = self._client.get(bucket.key)
            factor_raw = (
                self._client.hget(self._adaptive_key, bucket.adaptive) if bucket.adaptive else None
            )
            factor = float(factor_raw) if factor_raw is not None else 1.0
            effective = factor if 0 < factor < 1 else 1.0  # as the script reads it
            count, span = bucket.window_at(effective)
            oldest = self._client.lindex(bucket.recent_key, count - 1) if span else None
        now = now_s * _MICROS + now_us
        tat = int(raw) if raw is not None else now
        allowed_at = tat - bucket.tolerance_us / effective
        if oldest is not None:
            allowed_at = max(allowed_at, int(oldest) + span)
        return factor, max(0.0, allowed_at - now) / _MICROS


def _admission(buckets: list[Bucket], answer: list[int]) -> TokenGrant:
    """The script's answer ``{granted, wait_us, blocking bucket, Redis's clock}``."""
    granted, wait_us, blocking, now_us = answer
    blocker = buckets[int(blocking) - 1] if blocking else None
    return TokenGrant(bool(granted), int(wait_us) / _MICROS, blocker, int(now_us))
