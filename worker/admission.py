"""Admission control: a job starts its SMTP transaction only with a token from every bucket
that applies. Waiting costs no attempt and logs no failure; the sender sleeps exactly as long
as the limiter says, and never holds a thread hostage when others could use it:

- a bulk job waiting for a token steps aside as soon as a transactional one is waiting;
- a job held up by a bucket not every job needs (a slowed recipient domain, a lane, a
  relay) is parked in the inbox until that bucket frees up, so jobs for other domains
  keep flowing. The global bucket is waited for in place: every job needs it anyway.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from enum import Enum

import structlog

from mailfleet.shared.job import EmailJob, Lane
from mailfleet.shared.relays import Relay
from mailfleet.worker.delivery import Delivery, Inbox
from mailfleet.worker.fail_closed import FailClosed
from mailfleet.worker.metrics import WorkerMetrics
from mailfleet.worker.rate_limit import Admission as TokenAnswer
from mailfleet.worker.rate_limit import Bucket, RateLimiter

log = structlog.get_logger("mailfleet.worker")


class Admit(Enum):
    GRANTED = "granted"
    STOPPING = "stopping"  # the worker is shutting down while waiting
    STALE = "stale"  # the delivery's connection is gone; the broker has requeued it


@dataclass(frozen=True)
class Parked:
    """Give the delivery back to the inbox, not to be taken before ``ready_at`` (monotonic)."""

    ready_at: float


class Admission:
    def __init__(
        self,
        limiter: RateLimiter,
        gate: FailClosed,
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

    def admit(
        self, delivery: Delivery, job: EmailJob, recipients: list[str], relay: Relay | None = None
    ) -> Admit | Parked:
        buckets = self._limiter.buckets_for(job, recipients, relay)
        if not buckets:
            return Admit.GRANTED
        known_busy = self._known_busy_until(buckets)
        if known_busy > time.monotonic() and self._inbox.ready():
            return Parked(known_busy)
        return self._wait_for_tokens(delivery, buckets)

    def _wait_for_tokens(self, delivery: Delivery, buckets: list[Bucket]) -> Admit | Parked:
        started = time.monotonic()
        while not self._stopping.is_set():
            admission = self._gate.run(lambda: self._limiter.try_take(buckets, delivery.lane))
            if admission is None:
                break
            if admission.granted:
                self._metrics.token_wait_seconds.observe(time.monotonic() - started)
                # When the token was taken, on Redis's clock: with the relay's arrival time it
                # gives a send's token-to-relay time, which the limit's bound depends on.
                log.debug(
                    "token_taken", job_id=delivery.properties.message_id, at_us=admission.at_us
                )
                return Admit.GRANTED
            parked = self._park_or_wait(delivery, admission)
            if parked is not None:
                return parked
        return Admit.STOPPING

    def _park_or_wait(self, delivery: Delivery, admission: TokenAnswer) -> Parked | None:
        """Park the delivery when another could use this thread; else sleep out the wait."""
        wait = admission.wait_seconds
        blocking = admission.blocking
        if blocking is not None and not blocking.every_job:
            until = self._note_busy(blocking, wait)
            if self._inbox.ready():
                return Parked(until)
        if delivery.lane is Lane.BULK:
            if self._inbox.wait_for_transactional(wait):
                return Parked(time.monotonic())
        else:
            self._stopping.wait(wait)
        return None

    def _known_busy_until(self, buckets: list[Bucket]) -> float:
        with self._lock:
            return max((self._blocked_until.get(bucket.key, 0.0) for bucket in buckets), default=0)

    def _note_busy(self, bucket: Bucket, wait: float) -> float:
        until = time.monotonic() + wait
        with self._lock:
            self._blocked_until[bucket.key] = until
        return until
