"""Admission control: a job starts its SMTP transaction only with a token from every bucket
that applies. Waiting costs no attempt and logs no failure; the sender sleeps exactly as long
as the limiter says, and never holds a thread hostage when others could use it:

- a bulk job waiting for a token steps aside as soon as a transactional one is waiting;
- a job held up by a bucket not every job needs (a slowed recipient domain, a lane, a
  relay) is parked in the inbox until that bucket frees up, so jobs for other domains
  keep flowing. The global bucket is waited for in place: every job needs it anyway;
- a job whose hourly or daily budget is spent is not held at all: it goes back as
  :class:`OverBudget`, to wait in a delay tier without using an attempt. The budget is
  remembered as spent until its window ends, so later jobs that need it ask Redis nothing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import structlog

from mailfleet.shared.errors import RedisUnavailable
from mailfleet.shared.job import EmailJob, Lane
from mailfleet.shared.relays import Relay
from mailfleet.shared.round_trip import ScriptCall
from mailfleet.worker.inbox import Delivery, GiveBack, Inbox, OverBudget
from mailfleet.worker.limits.bucket import Bucket
from mailfleet.worker.limits.buckets import RateLimiter, TokenGrant
from mailfleet.worker.metrics import WorkerMetrics
from mailfleet.worker.redis_gate import RedisGate

log = structlog.get_logger("mailfleet.worker")
_MAX_LEASED_ONE_BY_ONE = 8


@dataclass
class LeasePlan:
    """A batch's tokens, asked for ahead: the script calls to make and, for each, the
    buckets and the jobs it takes them for; ``granted`` starts with the jobs that need none."""

    granted: list[bool]
    calls: list[ScriptCall]
    takers: list[tuple[list[Bucket], list[int]]]


class Admission:
    def __init__(
        self,
        limiter: RateLimiter,
        gate: RedisGate,
        inbox: Inbox,
        metrics: WorkerMetrics,
        stopping: threading.Event,
    ) -> None:
        self._limiter = limiter
        self._gate = gate
        self._inbox = inbox
        self._metrics = metrics
        self._stopping = stopping
        self._lock = threading.Lock()
        self._blocked_until: dict[str, float] = {}  # bucket key -> when it is expected to free
        self._spent: dict[str, tuple[float, Bucket]] = {}  # budget key -> (until, budget)

    def admit(
        self, delivery: Delivery, job: EmailJob, recipients: list[str], relay: Relay | None = None
    ) -> GiveBack | OverBudget | None:
        """Take the job's tokens, waiting for them if need be: None once taken, else why the
        delivery goes back unsent (parked here in the inbox, the worker is stopping, or a
        budget is spent)."""
        buckets = self._limiter.buckets_for(job, recipients, relay)
        if not buckets:
            return None
        spent = self._known_spent(buckets)
        if spent is not None:
            return spent
        known_busy = self._known_busy_until(buckets)
        if known_busy > time.monotonic() and self._inbox.ready():
            return self._park(delivery, known_busy)
        return self._wait_for_tokens(delivery, buckets)

    def try_admit(
        self, delivery: Delivery, job: EmailJob, recipients: list[str], relay: Relay
    ) -> bool:
        """Take the job's tokens only if they are there right now: never waits, never parks
        (the job then takes the ordinary path, :meth:`admit`, on its turn)."""
        buckets = self._limiter.buckets_for(job, recipients, relay)
        if not buckets:
            return True
        if self._known_busy_until(buckets) > time.monotonic():
            return False
        try:
            admission = self._limiter.try_take(buckets, delivery.lane)
        except RedisUnavailable:
            return False  # the ordinary path holds the job until Redis is back
        if admission.granted:
            self._granted(delivery, admission, 0.0)
        else:
            self._note_spent(admission)
        return admission.granted

    def plan_lease(self, jobs: Sequence[tuple[Delivery, EmailJob, list[str]]]) -> LeasePlan:
        """For a sender's batch, ahead of the sends: the script calls that take each job's
        tokens now if they are there, to be made in the round trip that reads the batch's
        recipients, so the sends that got them need no call of their own. A job that got
        none takes the ordinary path, :meth:`admit`, on its turn. Only when no relay has a
        limit of its own (a job's buckets must not depend on its relay)."""
        if not self._limiter.relay_independent:
            return LeasePlan([False] * len(jobs), [], [])
        now = time.monotonic()
        per_job = [self._limiter.buckets_for(job, recipients) for _, job, recipients in jobs]
        plan = LeasePlan([not buckets for buckets in per_job], [], [])  # none: nothing to take
        # Jobs that share their buckets (and lane) take their tokens in one script call.
        groups: dict[tuple[tuple[str, ...], Lane], list[int]] = {}
        for index, buckets in enumerate(per_job):
            if buckets and self._known_busy_until(buckets) <= now:
                key = (tuple(bucket.key for bucket in buckets), jobs[index][0].lane)
                groups.setdefault(key, []).append(index)
        for (_, lane), indexes in groups.items():
            buckets = per_job[indexes[0]]
            plan.calls.append(self._limiter.take_call(buckets, lane, len(indexes)))
            plan.takers.append((buckets, indexes))
        return plan

    def finish_lease(
        self,
        jobs: Sequence[tuple[Delivery, EmailJob, list[str]]],
        plan: LeasePlan,
        answers: Sequence[list[int]],
    ) -> list[bool]:
        """Which jobs got their tokens from the plan's ``answers``. A group that could not
        have all of its tokens at once takes them one by one, as many as conform, in one more
        round trip."""
        granted = plan.granted
        alone: list[tuple[list[Bucket], int]] = []
        for (buckets, indexes), raw in zip(plan.takers, answers, strict=True):
            answer = self._limiter.answer(buckets, raw)
            if len(indexes) == 1:
                self._note_spent(answer)
            if answer.granted:
                for index in indexes:
                    granted[index] = True
                    self._granted(jobs[index][0], answer, 0.0)
            elif len(indexes) > 1:
                alone += [(buckets, index) for index in indexes]
        # A limit that binds: a batch takes no more tokens ahead than a batch of 8 did, so
        # that 64 bulk jobs do not hoard the bucket while transactional mail waits for it
        # (the rest take theirs on their turn, and step aside for transactional mail then).
        alone = alone[:_MAX_LEASED_ONE_BY_ONE]
        if not alone:
            return granted
        try:
            one_by_one = self._limiter.try_take_many(
                [(buckets, jobs[index][0].lane) for buckets, index in alone]
            )
        except RedisUnavailable:
            return granted  # the ordinary path holds the jobs until Redis is back
        for (_, index), answer in zip(alone, one_by_one, strict=True):
            granted[index] = answer.granted
            if answer.granted:
                self._granted(jobs[index][0], answer, 0.0)
            else:
                self._note_spent(answer)
        return granted

    def _wait_for_tokens(
        self, delivery: Delivery, buckets: list[Bucket]
    ) -> GiveBack | OverBudget | None:
        started = time.monotonic()
        while not self._stopping.is_set():
            admission = self._gate.run(lambda: self._limiter.try_take(buckets, delivery.lane))
            if admission is None:
                break
            if admission.granted:
                self._granted(delivery, admission, time.monotonic() - started)
                return None
            spent = self._note_spent(admission)
            if spent is not None:
                return spent
            if self._parked_or_waited(delivery, admission):
                return GiveBack.PARKED
        return GiveBack.STOPPING

    def _park(self, delivery: Delivery, until: float) -> GiveBack:
        """Give the delivery back to the inbox, not to be taken before ``until`` (monotonic)."""
        self._inbox.park(delivery, until)
        return GiveBack.PARKED

    def _parked_or_waited(self, delivery: Delivery, admission: TokenGrant) -> bool:
        """Park the delivery (True) when another could use this thread; else sleep out the
        wait (False: then try again)."""
        wait = admission.wait_seconds
        blocking = admission.blocking
        if blocking is not None and not blocking.every_job:
            until = self._note_busy(blocking, wait)
            if self._inbox.ready():
                self._park(delivery, until)
                return True
        if delivery.lane is Lane.BULK:
            if self._inbox.wait_for_transactional(wait):
                self._park(delivery, time.monotonic())
                return True
        else:
            self._stopping.wait(wait)
        return False

    def _granted(self, delivery: Delivery, admission: TokenGrant, waited: float) -> None:
        self._metrics.token_wait_seconds.observe(waited)
        # When the token was taken, on Redis's clock: with the relay's arrival time it gives
        # a send's token-to-relay time, which the limit's bound depends on.
        log.debug("token_taken", job_id=delivery.properties.message_id, at_us=admission.at_us)

    def _known_busy_until(self, buckets: list[Bucket]) -> float:
        with self._lock:
            return max((self._blocked_until.get(bucket.key, 0.0) for bucket in buckets), default=0)

    def _note_busy(self, bucket: Bucket, wait: float) -> float:
        until = time.monotonic() + wait
        with self._lock:
            self._blocked_until[bucket.key] = until
        return until

    def _note_spent(self, admission: TokenGrant) -> OverBudget | None:
        """When a budget refused: remember it as spent until its window ends, and say so."""
        budget = admission.blocking
        if admission.granted or budget is None or not budget.is_budget:
            return None
        until = self._note_busy(budget, admission.wait_seconds)
        with self._lock:
            self._spent[budget.key] = (until, budget)
        return OverBudget(admission.wait_seconds, budget.label, budget.per_relay)

    def _known_spent(self, buckets: list[Bucket]) -> OverBudget | None:
        """A budget among ``buckets`` known to be spent (the one that frees last), if any."""
        now = time.monotonic()
        with self._lock:
            spent = [self._spent[b.key] for b in buckets if b.key in self._spent]
        spent = [(until, budget) for until, budget in spent if until > now]
        if not spent:
            return None
        until, budget = max(spent, key=lambda item: item[0])
        return OverBudget(until - now, budget.label, budget.per_relay)
