"""Settling a delivery once its outcome is known: ack, retry through a delay tier, or
dead-letter with a reason. Every republish is confirmed before the original is acked."""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable
from typing import Any, Protocol

import structlog

from mailfleet.shared.addresses import domain_of
from mailfleet.shared.complaint_guard import RECHECK_SECONDS
from mailfleet.shared.errors import RedisUnavailable
from mailfleet.shared.events import EventKind
from mailfleet.shared.job import EmailJob
from mailfleet.shared.reports import Command, ReportKeys
from mailfleet.shared.settings import Settings
from mailfleet.shared.topology import tier_name
from mailfleet.worker.campaign_counts import NoCounters, Outcome
from mailfleet.worker.events import EventRecorder
from mailfleet.worker.forward import Forwarder, Publisher
from mailfleet.worker.inbox import Delivery, OverBudget
from mailfleet.worker.metrics import WorkerMetrics
from mailfleet.worker.retry import RetryPolicy, sort_refused
from mailfleet.worker.smtp.replies import SmtpReply
from mailfleet.worker.smtp.transport import SendResult
from mailfleet.worker.tally import Tally

log = structlog.get_logger("mailfleet.worker")
_ACCEPTED = SmtpReply(250, "")  # the event of an accepted recipient: its reply is not kept


class Acker(Protocol):
    def ack(self, delivery: Delivery) -> None: ...

    def requeue(self, delivery: Delivery) -> None: ...


class Ledger(Protocol):
    def mark(self, job_id: str, recipients: list[str]) -> None: ...


def _on_the_list(recipients: list[str]) -> str:
    return f"on the suppression list: {', '.join(recipients)}"


def _domains(recipients: Iterable[str]) -> str:
    return ",".join(sorted({domain_of(rcpt) for rcpt in recipients}))


class _NoQueue:
    """Where the counters of a settler built without a tally go: nowhere."""

    def queue(self, commands: list[Command]) -> None:
        pass


class Suppressor(Protocol):
    def add(self, address: str, reason: str) -> None: ...


class Counters(Protocol):
    def count(self, job: EmailJob, *outcomes: Outcome, recipients: int = 1) -> None: ...


class Adaptive(Protocol):
    def throttled(self, domain: str) -> None: ...

    def succeeded(self, domain: str) -> None: ...


class Settler:
    def __init__(
        self,
        *,
        settings: Settings,
        acker: Acker,
        publisher: Publisher,
        ledger: Ledger,
        suppression: Suppressor,
        metrics: WorkerMetrics,
        adaptive: Adaptive,
        events: EventRecorder | None = None,
        counters: Counters | None = None,
        tally: Tally | None = None,
    ) -> None:
        self._policy = RetryPolicy.from_settings(settings)
        self._acker = acker
        self._forward = Forwarder(publisher, settings.names)
        self._ledger = ledger
        self._suppression = suppression
        self._metrics = metrics
        self._adaptive = adaptive
        self._events = events or EventRecorder(enabled=False)
        self._counters: Counters = counters or NoCounters()
        self._tally = tally or Tally(_NoQueue(), ReportKeys(settings.names), metrics)

    def requeue(self, delivery: Delivery) -> None:
        self._acker.requeue(delivery)

    def duplicate(self, delivery: Delivery, job: EmailJob, recipients: list[str]) -> None:
        """Every recipient left was accepted for this job id already: ack, never send."""
        self._events.record(EventKind.DUPLICATE_SKIPPED, delivery, job, recipients)
        log.info("duplicate_skipped", job_id=job.id, lane=delivery.lane, attempt=delivery.attempt)
        self._metrics.job("duplicate", delivery.lane)
        self._acker.ack(delivery)

    def suppressed(self, delivery: Delivery, job: EmailJob, recipients: list[str]) -> None:
        """Every recipient left is on the suppression list: dead-letter, never send."""
        self._dead_letter_suppressed(delivery, job, recipients)
        log.warning(
            "dead_lettered",
            job_id=job.id,
            lane=delivery.lane,
            reason="suppressed",
            domain=_domains(recipients),
        )
        self._acker.ack(delivery)

    def invalid(self, delivery: Delivery, error: str, job: EmailJob | None = None) -> None:
        """Dead-letter a message that is no valid job, or whose ``job`` cannot be rendered."""
        self._reject(delivery, "invalid", error)
        if job is not None:
            mailed = len(delivery.only_recipients or job.recipients())
            self._counters.count(job, Outcome.DEAD_LETTERED, recipients=mailed)

    def crashed(self, delivery: Delivery) -> None:
        count = delivery.delivery_count
        self._reject(delivery, "crashed", f"redelivered {count} times: it crashed the workers")

    def _reject(self, delivery: Delivery, reason: str, error: str) -> None:
        """Dead-letter the whole message (it was never sent) and ack it."""
        self._forward.dead_letter(delivery, reason, error, delivery.only_recipients)
        self._count_dead_letter(reason, delivery)
        log.warning(
            "dead_lettered",
            job_id=delivery.properties.message_id,
            lane=delivery.lane,
            reason=reason,
            error=error[:200],
        )
        self._acker.ack(delivery)

    def defer(self, delivery: Delivery, job: EmailJob, seconds: float) -> None:
        """Park a job whose ``not_before`` lies ahead in a delay tier, without using an attempt."""
        delay = self._policy.wait_tier(seconds)
        self._forward.to_tier(delivery, delay, delivery.attempt, delivery.only_recipients)
        log.info("deferred", job_id=job.id, lane=delivery.lane, wait_s=round(delay, 1))
        waiting = len(delivery.only_recipients or job.recipients())
        self._counters.count(job, Outcome.DEFERRED, recipients=waiting)
        self._metrics.job("deferred", delivery.lane)
        self._acker.ack(delivery)

    def over_budget(self, delivery: Delivery, job: EmailJob, spent: OverBudget) -> None:
        """Send a job whose budget is spent to a delay tier, without using an attempt; it is
        checked again when it comes back (asking Redis only once the budget may have room)."""
        delay = self._policy.wait_tier(spent.wait_seconds)
        self._forward.to_tier(delivery, delay, delivery.attempt, delivery.only_recipients)
        log.info(
            "over_budget",
            job_id=job.id,
            lane=delivery.lane,
            budget=spent.budget,
            refills_in_s=round(spent.wait_seconds),
        )
        self._metrics.job("over_budget", delivery.lane)
        self._acker.ack(delivery)

    def pause(self, delivery: Delivery, job: EmailJob) -> None:
        """Hold bulk mail of a sender domain the complaint guard paused: in a delay tier,
        without using an attempt, until the pause is lifted."""
        delay = self._policy.wait_tier(RECHECK_SECONDS / 5)
        self._forward.to_tier(delivery, delay, delivery.attempt, delivery.only_recipients)
        log.info("bulk_paused", job_id=job.id, sender=domain_of(job.from_), wait_s=delay)
        waiting = len(delivery.only_recipients or job.recipients())
        self._counters.count(job, Outcome.DEFERRED, recipients=waiting)
        self._metrics.job("paused", delivery.lane)
        self._acker.ack(delivery)

    def settle(
        self,
        delivery: Delivery,
        job: EmailJob,
        result: SendResult,
        started: float,
        suppressed: list[str] | None = None,
    ) -> None:
        """Ack after the relay's replies are acted on: marked sent, retried, or dead-lettered;
        ``suppressed`` recipients, left out of the send, are dead-lettered too."""
        base = {
            "job_id": job.id,
            "lane": delivery.lane.value,
            "attempt": delivery.attempt,
            "relay": result.relay,
            "duration_ms": round((time.monotonic() - started) * 1000, 1),
        }
        if result.accepted:
            self._tally.sent(delivery, job, result.accepted)  # its references go with the mark
            try:
                self._ledger.mark(job.id, result.accepted)
            except RedisUnavailable as exc:  # delivered all the same: acking is still right
                log.warning("sent_mark_failed", job_id=job.id, error=str(exc))
            self._counters.count(job, Outcome.SENT, recipients=len(result.accepted))
            self._events.record(
                EventKind.DELIVERED,
                delivery,
                job,
                result.accepted,
                reply=_ACCEPTED,
                relay=result.relay,
            )
            log.info("delivered", **base, smtp_code=250, domain=_domains(result.accepted))
            self._metrics.job("delivered", delivery.lane)
            self._metrics.smtp_replies.labels(code="250").inc(len(result.accepted))
            for domain in {domain_of(rcpt) for rcpt in result.accepted}:
                self._adaptive.succeeded(domain)
        for reply in result.refused.values():
            self._metrics.smtp_replies.labels(code=str(reply.code)).inc()
        refused = sort_refused(result.refused)
        for rcpt in refused.bad_mailboxes:
            self._suppress(rcpt, result.refused[rcpt])
        for domain in refused.throttled:
            self._adaptive.throttled(domain)
        retry, permanent = refused.retry, refused.permanent
        if suppressed:
            self._dead_letter_suppressed(delivery, job, suppressed)
        if permanent:
            self._tally.hard_bounced(delivery, job, permanent)
            self._events.record(
                EventKind.BOUNCED, delivery, job, permanent, replies=permanent, relay=result.relay
            )
            self._fail(delivery, job, "permanent", permanent, base)
        if retry:
            self._retry(delivery, job, retry, base)
        self._acker.ack(delivery)

    def _retry(
        self, delivery: Delivery, job: EmailJob, refused: dict[str, SmtpReply], base: dict[str, Any]
    ) -> None:
        attempt = delivery.attempt
        if self._policy.gives_up(attempt, delivery.properties.timestamp, time.time()):
            self._fail(delivery, job, "exhausted", refused, base)
            return
        delay = self._policy.delay_after(attempt)
        self._forward.to_tier(delivery, delay, attempt + 1, self._subset(job, refused))
        self._counters.count(job, Outcome.DEFERRED, recipients=len(refused))
        self._tally.deferred(delivery, job, refused)
        self._events.record(
            EventKind.DEFERRED,
            delivery,
            job,
            refused,
            replies=refused,
            relay=base["relay"],
            retry_in=delay,
        )
        reply = next(iter(refused.values()))
        log.info(
            "retry_scheduled",
            **base,
            smtp_code=reply.code,
            error=str(reply)[:200],
            delay_s=delay,
            domain=_domains(refused),
        )
        self._metrics.job("retried", delivery.lane)
        self._metrics.retries.labels(tier=tier_name(delay)).inc()

    def _fail(
        self,
        delivery: Delivery,
        job: EmailJob,
        reason: str,
        refused: dict[str, SmtpReply],
        base: dict[str, Any],
    ) -> None:
        reply = next(iter(refused.values()))
        self._forward.dead_letter(delivery, reason, str(reply), self._subset(job, refused))
        self._count_dead_letter(reason, delivery)
        outcomes = [Outcome.DEAD_LETTERED] + ([Outcome.BOUNCED] if reason == "permanent" else [])
        self._counters.count(job, *outcomes, recipients=len(refused))
        self._tally.dead_lettered(delivery, job, refused)
        self._events.record(
            EventKind.DEAD_LETTERED,
            delivery,
            job,
            refused,
            replies=refused,
            relay=base["relay"],
            reason=reason,
        )
        log.warning(
            "dead_lettered",
            **base,
            reason=reason,
            smtp_code=reply.code,
            error=str(reply)[:200],
            domain=_domains(refused),
        )

    def _dead_letter_suppressed(
        self, delivery: Delivery, job: EmailJob, recipients: list[str]
    ) -> None:
        error = _on_the_list(recipients)
        self._forward.dead_letter(delivery, "suppressed", error, self._subset(job, recipients))
        self._count_dead_letter("suppressed", delivery)
        self._counters.count(
            job, Outcome.DEAD_LETTERED, Outcome.SUPPRESSED, recipients=len(recipients)
        )
        self._tally.suppressed(delivery, job, recipients)
        self._events.record(EventKind.SUPPRESSED, delivery, job, recipients)
        self._events.record(EventKind.DEAD_LETTERED, delivery, job, recipients, reason="suppressed")

    def _suppress(self, address: str, reply: SmtpReply) -> None:
        try:
            self._suppression.add(address, str(reply))
        except RedisUnavailable as exc:  # the dead letter still records the reply
            log.warning("suppress_failed", domain=domain_of(address), error=str(exc))

    def _count_dead_letter(self, reason: str, delivery: Delivery) -> None:
        self._metrics.dead_letters.labels(reason=reason).inc()
        self._metrics.job("dead_lettered", delivery.lane)

    @staticmethod
    def _subset(job: EmailJob, recipients: Collection[str]) -> list[str] | None:
        """``recipients`` as a list when they are fewer than the job's, else None (all)."""
        return None if set(recipients) >= set(job.recipients()) else list(recipients)
