"""The first step of a delivery: is it a job that may be sent now? A message that crashed
workers too often, is not a valid v1 job, is not yet due (``not_before``, its send window)
or does not render is settled here and goes no further; the rest come out as jobs ready to
build (their template, if any, rendered)."""

from __future__ import annotations

from datetime import UTC, datetime

import structlog

from mailfleet.shared.errors import InvalidJobError, RenderError
from mailfleet.shared.job import EmailJob, JobLimits, parse_message
from mailfleet.worker.inbox import Delivery
from mailfleet.worker.personalise import Personaliser, Stopping
from mailfleet.worker.retry import RetryPolicy
from mailfleet.worker.send_time import SendTime
from mailfleet.worker.settle import Settler

log = structlog.get_logger("mailfleet.worker")


def decode(delivery: Delivery, limits: JobLimits) -> EmailJob:
    """The job in ``delivery``; :class:`InvalidJobError` if it is not a valid v1 job."""
    return parse_message(delivery.body, delivery.properties.type, limits)


class Screen:
    def __init__(
        self,
        *,
        limits: JobLimits,
        retry: RetryPolicy,
        settler: Settler,
        send_time: SendTime,
        personaliser: Personaliser | None,
    ) -> None:
        self._limits = limits
        self._retry = retry
        self._settler = settler
        self._send_time = send_time
        self._personaliser = personaliser

    def job(self, delivery: Delivery) -> EmailJob | None:
        """The job, or None once settled here: crashed too often, invalid, or not yet due."""
        try:
            if self._retry.crashed_out(delivery.delivery_count):
                self._settler.crashed(delivery)
                return None
            try:
                job = decode(delivery, self._limits)
            except InvalidJobError as exc:
                self._settler.invalid(delivery, str(exc))
                return None
            wait = self._send_time.wait(job, datetime.now(UTC))
            if wait > 0:
                self._settler.defer(delivery, job, wait)
                return None
            if job.template is not None:
                return self._personalised(delivery, job)
        except Exception:
            log.exception("job_failed_unexpectedly", job_id=delivery.properties.message_id)
            self._settler.requeue(delivery)
            return None
        return job

    def _personalised(self, delivery: Delivery, job: EmailJob) -> EmailJob | None:
        """The job with its template rendered, or None once dead-lettered (it does not
        render) or requeued (stopping while Redis is away)."""
        try:
            if self._personaliser is None:
                raise RenderError(job.template.label() if job.template else "", "no renderer")
            return self._personaliser.apply(job)
        except RenderError as exc:
            self._settler.invalid(delivery, str(exc), job)
        except Stopping:
            self._settler.requeue(delivery)
        return None
