"""The thin per-message loop: decode → dedupe → (wait for not_before) → send → settle.

Each step is a small collaborator; this module only calls them in order.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import structlog

from mailfleet.shared.addresses import bare_address
from mailfleet.shared.errors import InvalidJobError
from mailfleet.shared.job import JOB_TYPE, EmailJob, JobLimits, parse_job
from mailfleet.worker.delivery import Delivery
from mailfleet.worker.fail_closed import FailClosed
from mailfleet.worker.idempotency import SentLedger
from mailfleet.worker.mime import build_message
from mailfleet.worker.settle import Settler
from mailfleet.worker.smtp import Envelope, Transport

log = structlog.get_logger("mailfleet.worker")


def decode(delivery: Delivery, limits: JobLimits) -> EmailJob:
    """The job in ``delivery``; :class:`InvalidJobError` if it is not a valid v1 job."""
    kind = delivery.properties.type
    if kind is not None and kind != JOB_TYPE:
        raise InvalidJobError([("type", f"unknown message type {kind!r}, expected {JOB_TYPE}")])
    return parse_job(delivery.body, limits)


class Pipeline:
    def __init__(
        self, limits: JobLimits, ledger: SentLedger, settler: Settler, gate: FailClosed
    ) -> None:
        self._limits = limits
        self._ledger = ledger
        self._settler = settler
        self._gate = gate

    def handle(self, delivery: Delivery, transport: Transport) -> None:
        started = time.monotonic()
        try:
            job = decode(delivery, self._limits)
        except InvalidJobError as exc:
            self._settler.invalid(delivery, str(exc))
            return
        if job.not_before is not None:
            wait = (job.not_before - datetime.now(UTC)).total_seconds()
            if wait > 0:
                self._settler.defer(delivery, job, wait)
                return
        recipients = self._gate.run(lambda: self._still_to_send(delivery, job))
        if recipients is None:  # stopping while Redis is away: give the message back
            self._settler.requeue(delivery)
            return
        if not recipients:
            self._settler.duplicate(delivery, job)
            return
        envelope = Envelope(bare_address(job.from_), recipients, build_message(job))
        self._settler.settle(delivery, job, transport.send(envelope), started)

    def _still_to_send(self, delivery: Delivery, job: EmailJob) -> list[str]:
        wanted = job.recipients()
        only = delivery.only_recipients
        if only is not None:
            wanted = [rcpt for rcpt in wanted if rcpt in only]
        sent = self._ledger.sent_to(job.id)
        return [rcpt for rcpt in wanted if rcpt not in sent]
