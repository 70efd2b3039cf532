"""Admission control: a job starts its SMTP transaction only with a token from every bucket
that applies. Waiting costs no attempt and logs no failure; the sender sleeps exactly as long
as the limiter says. A bulk job waiting for a token steps aside as soon as a transactional
one is waiting in this worker."""

from __future__ import annotations

import threading
import time
from enum import Enum

from mailfleet.shared.job import EmailJob, Lane
from mailfleet.shared.relays import Relay
from mailfleet.worker.delivery import Delivery, Inbox
from mailfleet.worker.fail_closed import FailClosed
from mailfleet.worker.metrics import WorkerMetrics
from mailfleet.worker.rate_limit import RateLimiter


class Admit(Enum):
    GRANTED = "granted"
    STEP_ASIDE = "step_aside"  # give the delivery back: a transactional job goes first
    STOPPING = "stopping"  # the worker is shutting down while waiting


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

    def admit(
        self, delivery: Delivery, job: EmailJob, recipients: list[str], relay: Relay | None = None
    ) -> Admit:
        buckets = self._limiter.buckets_for(job, recipients, relay)
        if not buckets:
            return Admit.GRANTED
        started = time.monotonic()
        while True:
            admission = self._gate.run(lambda: self._limiter.try_take(buckets))
            if admission is None:
                return Admit.STOPPING
            if admission.granted:
                self._metrics.token_wait_seconds.observe(time.monotonic() - started)
                return Admit.GRANTED
            if delivery.lane is Lane.BULK:
                if self._inbox.wait_for_transactional(admission.wait_seconds):
                    return Admit.STEP_ASIDE
            elif self._stopping.wait(admission.wait_seconds):
                return Admit.STOPPING
            if self._stopping.is_set():
                return Admit.STOPPING
