"""The thin per-message loop: decode → wait for not_before → dedupe and suppress → take
rate-limit tokens → send → settle. Each step is a small collaborator; this only orders them.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from mailfleet.shared.addresses import bare_address
from mailfleet.shared.errors import InvalidJobError
from mailfleet.shared.job import JOB_TYPE, EmailJob, JobLimits, parse_job
from mailfleet.worker.admission import Admit, Parked
from mailfleet.worker.delivery import Delivery
from mailfleet.worker.dispatch import Dispatcher
from mailfleet.worker.fail_closed import FailClosed
from mailfleet.worker.metrics import WorkerMetrics
from mailfleet.worker.mime import build_message
from mailfleet.worker.recipients import RecipientFilter
from mailfleet.worker.settle import Settler
from mailfleet.worker.smtp import Envelope, Transport

# What handling a delivery ends in: settled (acked, requeued, retried or dead-lettered),
# or parked: back to the inbox until a rate-limit bucket frees up.
Handled = Parked | None
SETTLED = None


def decode(delivery: Delivery, limits: JobLimits) -> EmailJob:
    """The job in ``delivery``; :class:`InvalidJobError` if it is not a valid v1 job."""
    kind = delivery.properties.type
    if kind is not None and kind != JOB_TYPE:
        raise InvalidJobError([("type", f"unknown message type {kind!r}, expected {JOB_TYPE}")])
    return parse_job(delivery.body, limits)


class Pipeline:
    def __init__(
        self,
        *,
        limits: JobLimits,
        crash_limit: int,
        recipients: RecipientFilter,
        dispatcher: Dispatcher,
        settler: Settler,
        gate: FailClosed,
        metrics: WorkerMetrics,
    ) -> None:
        self._limits = limits
        self._crash_limit = crash_limit
        self._recipients = recipients
        self._dispatcher = dispatcher
        self._settler = settler
        self._gate = gate
        self._metrics = metrics

    def handle(self, delivery: Delivery, transport: Transport) -> Handled:
        started = time.monotonic()
        if delivery.delivery_count >= self._crash_limit:
            # Handed out this often, it keeps taking workers down with it: stop here, with
            # our headers, before the queue's own delivery limit drops it without them.
            self._settler.crashed(delivery)
            return SETTLED
        try:
            job = decode(delivery, self._limits)
        except InvalidJobError as exc:
            self._settler.invalid(delivery, str(exc))
            return SETTLED
        if job.not_before is not None:
            wait = (job.not_before - datetime.now(UTC)).total_seconds()
            if wait > 0:
                self._settler.defer(delivery, job, wait)
                return SETTLED
        return self._send(delivery, job, transport, started)

    def _send(
        self, delivery: Delivery, job: EmailJob, transport: Transport, started: float
    ) -> Handled:
        recipients = self._gate.run(lambda: self._recipients.split(delivery, job))
        if recipients is None:  # stopping while Redis is away: give the message back
            self._settler.requeue(delivery)
            return SETTLED
        if not recipients.to_send:
            if recipients.suppressed:
                self._settler.suppressed(delivery, job, recipients.suppressed)
            else:
                self._settler.duplicate(delivery, job)
            return SETTLED
        envelope = Envelope(bare_address(job.from_), recipients.to_send, build_message(job))
        sending = time.monotonic()
        result = self._dispatcher.dispatch(delivery, job, envelope, transport)
        if isinstance(result, Parked):
            return result
        if result is Admit.STALE:  # the broker requeued it when the connection went
            return SETTLED
        if isinstance(result, Admit):  # the worker is stopping while waiting for a token
            self._settler.requeue(delivery)
            return SETTLED
        self._metrics.send_seconds.observe(time.monotonic() - sending)
        self._settler.settle(delivery, job, result, started, suppressed=recipients.suppressed)
        return SETTLED
