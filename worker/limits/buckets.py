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
from mailfleet.shared.durations import Rate, format_duration
from mailfleet.shared.job import EmailJob, Lane
from mailfleet.shared.limit_spec import DAY, Limit
from mailfleet.shared.names import Names
from mailfleet.shared.redis_client import redis_errors
from mailfleet.shared.redis_ha import follow_moved, slot_client
from mailfleet.shared.relays import Relay
from mailfleet.shared.round_trip import ScriptCall
from mailfleet.shared.settings import Settings
from mailfleet.worker.limits.bucket import Bucket, budget_bucket, default_burst

_SCRIPT = files("mailfleet.worker.limits").joinpath("gcra.lua").read_text()
_MICROS = 1_000_000
_UNREACHABLE = "cannot reach the rate limiter"


@dataclass(frozen=True)
class TokenGrant:
    granted: bool
    wait_seconds: float
    blocking: Bucket | None = None  # the bucket that needs the longest wait
    at_us: int = 0  # Redis's clock when the script answered (0: no bucket, no script)


@dataclass(frozen=True)
class BudgetState:
    """A budget now: its cap in this window (None: a warm-up that is over), what is used
    and when the next window starts."""

    cap: int | None
    used: int
    refills_in_s: float

    @property
    def remaining(self) -> int | None:
        return None if self.cap is None else max(0, self.cap - self.used)


class RateLimiter:
    """Which buckets apply to a job, and taking one token from each of them atomically."""

    def __init__(self, client: redis.Redis, settings: Settings) -> None:
        self._client = client
        self._names = settings.names
        self._script = client.register_script(_SCRIPT)
        names = settings.names
        self._global = [
            replace(bucket, every_job=True)
            for bucket in self._buckets(
                names, "global", "global", settings.rate_limit, settings.rate_burst
            )
        ]
        self._domains = {
            domain: [
                bucket if bucket.is_budget else replace(bucket, adaptive=domain)
                for bucket in self._buckets(names, f"domain:{domain}", f"domain {domain}", limit)
            ]
            for domain, limit in settings.domain_limits.items()
        }
        self._adaptive_key = names.redis_key("adaptive")
        self._relays = {
            relay: buckets
            for relay in settings.smtp_relays
            if (buckets := self._relay_buckets(names, relay))
        }
        self._lanes = {
            lane: self._buckets(names, f"lane:{lane.value}", f"lane {lane.value}", limit)
            for lane, limit in settings.lane_limits.items()
        }

    @staticmethod
    def _bucket(names: Names, key: str, label: str, rate: Rate, burst: int | None) -> Bucket:
        return Bucket(names.redis_key("rate", key), label, rate, burst or default_burst(rate))

    @classmethod
    def _buckets(
        cls,
        names: Names,
        key: str,
        label: str,
        limit: Limit | Rate | None,
        burst: int | None = None,
    ) -> list[Bucket]:
        """A limit's pace bucket (``{ns}:rate:<key>``) and its budgets (``…:1h``, ``…:1d``)."""
        if limit is None:
            return []
        limit = Limit.of(limit)
        buckets = [cls._bucket(names, key, label, limit.pace, burst)] if limit.pace else []
        for budget in limit.budgets:
            window = format_duration(budget.window_seconds)
            buckets.append(
                budget_bucket(
                    names.redis_key("rate", key, window),
                    f"{label} per {'day' if budget.window_seconds == DAY else 'hour'}",
                    budget.window_seconds,
                    (budget.count,),
                )
            )
        return buckets

    @classmethod
    def _relay_buckets(cls, names: Names, relay: Relay) -> list[Bucket]:
        key, label = f"relay:{relay.name}", f"relay {relay.name}"
        buckets = cls._buckets(names, key, label, Limit(relay.rate, relay.budgets))
        if relay.warmup is not None:
            warmup = budget_bucket(
                names.redis_key("rate", key, "warmup"),
                f"{label} warm-up",
                DAY,
                relay.warmup.caps,
                relay.warmup.first_day,
            )
            buckets.append(warmup)
        return [
            replace(bucket, per_relay=True) if bucket.is_budget else bucket for bucket in buckets
        ]

    def configured_buckets(self) -> list[Bucket]:
        """Every bucket the settings name: global, per domain, per lane, per relay."""
        buckets = list(self._global)
        for domain in sorted(self._domains):
            buckets += self._domains[domain]
        for lane in Lane:
            buckets += self._lanes.get(lane, ())
        for relay_buckets in self._relays.values():
            buckets += relay_buckets
        return buckets

    @property
    def configured(self) -> bool:
        return bool(self._global or self._domains or self._lanes or self._relays)

    def relay_buckets(self) -> dict[Relay, list[Bucket]]:
        """Each relay's own buckets (for ``mailfleet explain``)."""
        return dict(self._relays)

    def buckets_for(
        self, job: EmailJob, recipients: list[str], relay: Relay | None = None
    ) -> list[Bucket]:
        """Every bucket a send of ``job`` to ``recipients`` through ``relay`` takes from."""
        buckets = list(self._global)
        domains = sorted({domain_of(rcpt) for rcpt in recipients})
        for domain in domains:
            buckets += self._domains.get(domain, ())
        buckets += self._lanes.get(job.lane, ())
        if relay is not None:
            buckets += self._relays.get(relay, ())
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
            args += bucket.script_args(lane)
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

    def budget_state(self, bucket: Bucket) -> BudgetState:
        """What is left of a budget now, read as ``gcra.lua`` counts it."""
        with redis_errors(_UNREACHABLE):
            now_s, _ = self._client.time()
            raw = self._client.get(bucket.key)
        window = now_s // bucket.window_s
        used = 0
        if raw is not None:
            text = raw.decode() if isinstance(raw, bytes) else str(raw)
            stored_window, _, stored_used = text.partition(":")
            used = int(stored_used) if int(stored_window) == window else 0
        cap = bucket.caps[0] if len(bucket.caps) == 1 else None
        if len(bucket.caps) > 1:
            step = max(0, now_s // 86400 - bucket.first_day)
            cap = bucket.caps[step] if step < len(bucket.caps) else None
        return BudgetState(cap, used, float((window + 1) * bucket.window_s - now_s))


def _admission(buckets: list[Bucket], answer: list[int]) -> TokenGrant:
    """The script's answer ``{granted, wait_us, blocking bucket, Redis's clock}``."""
    granted, wait_us, blocking, now_us = answer
    blocker = buckets[int(blocking) - 1] if blocking else None
    return TokenGrant(bool(granted), int(wait_us) / _MICROS, blocker, int(now_us))
