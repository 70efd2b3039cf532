"""The thin per-message loop: screen (decode, not_before and the send window, the template:
``screen.py``) → dedupe and suppress → take rate-limit tokens → send → settle. Each step
is a small collaborator; this only orders them. A sender hands in a batch of deliveries;
the dedupe and suppression read is one Redis call for all of them.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

import structlog

from mailfleet.shared.addresses import domain_of
from mailfleet.shared.complaint_guard import ComplaintGuard
from mailfleet.shared.errors import BrokerBlocked
from mailfleet.shared.job import EmailJob, JobLimits, Lane
from mailfleet.shared.recipients import RecipientFilter, Recipients, wanted
from mailfleet.shared.relays import Relay
from mailfleet.worker.broker.pushback import Pushback
from mailfleet.worker.dispatch import Dispatcher
from mailfleet.worker.envelopes import Envelopes
from mailfleet.worker.inbox import Delivery, GiveBack, OverBudget
from mailfleet.worker.inflight import InFlightMarks
from mailfleet.worker.metrics import WorkerMetrics
from mailfleet.worker.mime.build import build_message
from mailfleet.worker.mime.finish import Finisher
from mailfleet.worker.paused import PausedSenders
from mailfleet.worker.personalise import Personaliser
from mailfleet.worker.redis_gate import RedisGate
from mailfleet.worker.retry import RetryPolicy
from mailfleet.worker.screen import Screen
from mailfleet.worker.send_time import SendTime
from mailfleet.worker.settle import Settler
from mailfleet.worker.smtp.transport import Envelope, Transport

log = structlog.get_logger("mailfleet.worker")


class Pipeline:
    def __init__(
        self,
        *,
        limits: JobLimits,
        retry: RetryPolicy,
        recipients: RecipientFilter,
        dispatcher: Dispatcher,
        settler: Settler,
        gate: RedisGate,
        metrics: WorkerMetrics,
        finisher: Finisher | None = None,
        send_time: SendTime | None = None,
        personaliser: Personaliser | None = None,
        envelopes: Envelopes | None = None,
        guard: ComplaintGuard | None = None,
        paused: PausedSenders | None = None,
        pushback: Pushback | None = None,
        inflight: InFlightMarks | None = None,
        ambiguity: Mapping[Lane, str] | None = None,
    ) -> None:
        self._envelopes = envelopes or Envelopes()
        self._guard = guard
        self._paused = paused or PausedSenders()
        self._pushback = pushback
        self._inflight = inflight
        self._ambiguity = ambiguity or {}
        self._recipients = recipients
        self._dispatcher = dispatcher
        self._settler = settler
        self._gate = gate
        self._metrics = metrics
        self._finisher = finisher
        self._screen = Screen(
            limits=limits,
            retry=retry,
            settler=settler,
            send_time=send_time or SendTime(),
            personaliser=personaliser,
        )

    def handle_batch(self, deliveries: list[Delivery], transport: Transport) -> None:
        """Handle deliveries taken together: one Redis round trip reads every job's
        recipients (and takes their tokens), then each is sent in turn. Each ends settled
        (acked, requeued, retried or dead-lettered) or parked in the inbox again."""
        jobs = [(delivery, job) for delivery in deliveries if (job := self._screen.job(delivery))]
        if not jobs:
            return
        per_job = [wanted(delivery, job) for delivery, job in jobs]
        twins = _twins(jobs)
        # Tokens are leased for what each job asks, before the ledger says what is left of
        # it: one round trip for both. A job that turns out sent or suppressed wastes its
        # token, which only ever slows sending down.
        eligible = [i for i, rcpts in enumerate(per_job) if rcpts and i not in twins]
        asked = [(*jobs[i], per_job[i]) for i in eligible]
        plan = self._dispatcher.plan_lease(asked)
        bulk = any(delivery.lane is Lane.BULK for delivery, _ in jobs)
        guarded = self._guard is not None and bulk and self._paused.due()
        calls = [*plan.calls, self._guard.read_call()] if self._guard and guarded else plan.calls
        # The in-flight marks ride in the same round trip, last (worker/inflight.py).
        marks = [] if self._inflight is None else [self._inflight.call(jobs, per_job)]
        read = self._gate.run(lambda: self._recipients.split_with(jobs, per_job, [*calls, *marks]))
        if read is None:  # stopping while Redis is away: give the messages back
            for delivery, _ in jobs:
                self._settler.requeue(delivery)
            return
        split, answers = read
        batch = _Batch(jobs, split, twins)
        if self._inflight is not None:
            batch.lost = self._inflight.lost_attempts(jobs, per_job, answers[-1])
            answers = answers[:-1]
        if guarded:
            self._paused.update(ComplaintGuard.paused_of(answers[-1]))
            self._metrics.paused = self._paused.domains
            answers = answers[:-1]
        leases = self._dispatcher.finish_lease(asked, plan, answers)
        batch.leased = {i for i, granted in zip(eligible, leases, strict=True) if granted}
        for index, (delivery, job) in enumerate(jobs):
            if self._pushback is not None and self._pushback.reason is not None:
                # The broker blocks publishing: what is left of the batch goes back unsent
                # rather than each waiting out a retry it could not publish.
                self._give_back(batch, index)
                continue
            if delivery.lane is Lane.BULK and domain_of(job.from_) in self._paused.domains:
                self._release(batch, index)  # not sent now: its marks must not count later
                self._settler.pause(delivery, job)
                batch.envelopes[index] = None  # nothing to chain behind
                continue
            try:
                self._send(batch, index, transport)
            except BrokerBlocked as exc:  # its retry or dead letter was not published
                log.warning("broker_blocked", job_id=job.id, reason=exc.reason)
                self._give_back(batch, index)
            except Exception:
                log.exception("job_failed_unexpectedly", job_id=job.id)
                self._give_back(batch, index)

    def _envelope(self, batch: _Batch, index: int) -> Envelope | None:
        """The envelope of the batch's job ``index``, built once; None once it is settled
        here because nobody is left to mail (all sent already, or suppressed)."""
        if index in batch.envelopes:
            return batch.envelopes[index]
        delivery, job = batch.jobs[index]
        recipients = batch.recipients[index]
        twins = batch.sent.get(job.id, set())
        to_send = [rcpt for rcpt in recipients.to_send if rcpt not in twins]
        envelope = None
        if not to_send:
            if recipients.suppressed:
                self._settler.suppressed(delivery, job, recipients.suppressed)
            else:
                sent_before = [*recipients.already_sent, *recipients.to_send]  # twins: just now
                self._settler.duplicate(delivery, job, sent_before)
        elif not self._held(batch, index, to_send):
            message = build_message(job)
            if self._finisher is not None:
                message = self._finisher.finish(job, to_send, message)
            envelope = self._envelopes.of(job, to_send, message)
        batch.envelopes[index] = envelope
        return envelope

    def _held(self, batch: _Batch, index: int, to_send: list[str]) -> bool:
        """Whether the job's recipients are held (dead-lettered ``ambiguous``) because an
        earlier send of this attempt may have reached the relay; counts them either way."""
        if not batch.lost:
            return False
        lost = batch.lost[index]
        ambiguous = [rcpt for rcpt in to_send if rcpt in lost]
        if not ambiguous:
            return False
        delivery, job = batch.jobs[index]
        policy = self._ambiguity.get(delivery.lane, "resend")
        self._metrics.ambiguous.labels(lane=delivery.lane.value, policy=policy).inc(len(ambiguous))
        log.warning("ambiguous_send", job_id=job.id, lane=delivery.lane, policy=policy)
        if policy != "hold":
            return False
        # Every recipient of a delivery is marked at once, so those left are all ambiguous.
        when = min(lost[rcpt] for rcpt in ambiguous)
        suppressed = batch.recipients[index].suppressed
        self._settler.ambiguous(delivery, job, to_send, when, suppressed)
        return True

    def _release(self, batch: _Batch, index: int) -> None:
        if self._inflight is not None and batch.lost:
            self._inflight.release(batch.jobs[index][1], batch.recipients[index].to_send)

    def _give_back(self, batch: _Batch, index: int) -> None:
        """Requeue the job unsent, its in-flight marks dropped first."""
        self._release(batch, index)
        self._settler.requeue(batch.jobs[index][0])

    def _next_on(
        self, batch: _Batch, index: int, relay: Relay, transport: Transport
    ) -> Envelope | None:
        """The batch's next envelope, if it may be chained behind job ``index`` on ``relay``."""
        following = index + 1
        if following >= len(batch.jobs) or batch.has_twins(following):
            return None  # a twin's recipients depend on what the one before it achieved
        current = batch.envelopes.get(index)
        if not transport.chains(relay) or current is None or current.parts:
            return None  # a job of several transactions is sent on its own
        envelope = self._envelope(batch, following)
        if envelope is None or envelope.parts:
            return None
        drawn = batch.drawn[following] = self._dispatcher.draw()
        if drawn != relay:
            return None
        delivery, job = batch.jobs[following]
        leased = following in batch.leased
        chained = self._dispatcher.may_follow(delivery, job, envelope, relay, leased=leased)
        if not chained:
            return None
        self._leave_marks(batch, following, envelope)  # they go out with this one's sent mark
        return envelope

    def _leave_marks(self, batch: _Batch, index: int, envelope: Envelope) -> None:
        """Queue job ``index``'s in-flight marks, once (``worker/inflight.py``)."""
        if self._inflight is None or index in batch.marked:
            return
        batch.marked.add(index)
        self._inflight.leave(batch.jobs[index][0], batch.jobs[index][1], envelope.recipients)

    def _before_send(self, batch: _Batch, index: int, envelope: Envelope) -> None:
        """Right before the email's data goes out: its in-flight marks are in Redis."""
        if self._inflight is None:
            return
        self._leave_marks(batch, index, envelope)
        self._inflight.write_queued()

    def _send(self, batch: _Batch, index: int, transport: Transport) -> None:
        started = time.monotonic()
        envelope = self._envelope(batch, index)
        if envelope is None:
            return
        delivery, job = batch.jobs[index]
        sending = time.monotonic()
        result = self._dispatcher.dispatch(
            delivery,
            job,
            envelope,
            transport,
            then=lambda relay: self._next_on(batch, index, relay, transport),
            drawn=batch.drawn.pop(index, None),
            leased=index in batch.leased,
            before_send=lambda: self._before_send(batch, index, envelope),
        )
        if isinstance(result, GiveBack):
            if result is GiveBack.STOPPING:
                self._give_back(batch, index)
            elif result is GiveBack.STALE:  # the broker requeued it: drop its marks only
                self._release(batch, index)
            return
        if isinstance(result, OverBudget):
            self._settler.over_budget(delivery, job, result)
            return
        self._metrics.send_seconds.observe(time.monotonic() - sending)
        batch.sent.setdefault(job.id, set()).update(result.accepted)
        suppressed = batch.recipients[index].suppressed
        self._settler.settle(delivery, job, result, started, suppressed=suppressed)


@dataclass
class _Batch:
    """The deliveries one sender handles together, and what it learnt of them so far."""

    jobs: list[tuple[Delivery, EmailJob]]
    recipients: list[Recipients]
    twins: set[int]  # jobs that share their id with another of the batch
    envelopes: dict[int, Envelope | None] = field(default_factory=dict)
    drawn: dict[int, Relay | None] = field(default_factory=dict)  # relays drawn ahead
    leased: set[int] = field(default_factory=set)  # jobs whose tokens were taken ahead
    sent: dict[str, set[str]] = field(default_factory=dict)  # job id -> accepted here
    lost: list[dict[str, float]] = field(default_factory=list)  # marks of earlier deliveries
    marked: set[int] = field(default_factory=set)  # jobs whose in-flight marks are queued

    def has_twins(self, index: int) -> bool:
        return index in self.twins


def _twins(jobs: list[tuple[Delivery, EmailJob]]) -> set[int]:
    """The batch's jobs that share their id with another of the batch."""
    counts = Counter(job.id for _, job in jobs)
    return {index for index, (_, job) in enumerate(jobs) if counts[job.id] > 1}
