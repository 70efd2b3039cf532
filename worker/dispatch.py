"""Sending one envelope: choose a relay, take its tokens, send, and when the relay itself
failed, record it for the breaker and try once more on another healthy relay.

An envelope may also be sent *chained* behind the one before it on the same relay (see
``smtp/pipelining.py``): its relay is then already chosen and its tokens already taken.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import structlog

from mailfleet.shared.job import EmailJob
from mailfleet.shared.relays import Relay
from mailfleet.worker.inbox import Delivery, GiveBack, OverBudget
from mailfleet.worker.limits.admission import Admission, LeasePlan
from mailfleet.worker.smtp.relay_pool import RelayPool
from mailfleet.worker.smtp.replies import SmtpReply
from mailfleet.worker.smtp.transport import Envelope, SendResult, Transport

log = structlog.get_logger("mailfleet.worker")
_TRIES = 2  # the chosen relay, then one other

# Given the relay this envelope goes through: the next envelope, if it may follow on it.
NextOnRelay = Callable[[Relay], Envelope | None]


def no_relay(envelope: Envelope) -> SendResult:
    """Every relay's breaker is open: a transient failure, so the job waits in a delay tier."""
    reply = SmtpReply(0, "no healthy relay: every relay's circuit breaker is open")
    return SendResult("none", refused=dict.fromkeys(envelope.recipients, reply), relay_failed=True)


class Dispatcher:
    def __init__(
        self,
        pool: RelayPool,
        admission: Admission | None,
        is_current: Callable[[Delivery], bool] = lambda delivery: True,
    ) -> None:
        self._pool = pool
        self._admission = admission
        self._is_current = is_current

    def dispatch(
        self,
        delivery: Delivery,
        job: EmailJob,
        envelope: Envelope,
        transport: Transport,
        *,
        then: NextOnRelay | None = None,
        drawn: Relay | None = None,
        leased: bool = False,
        before_send: Callable[[], None] | None = None,
    ) -> SendResult | GiveBack | OverBudget:
        """The relay's replies, or why the delivery goes back unsent. ``drawn`` is
        this envelope's relay if it was drawn already, when the one before it was sent;
        ``leased``: its tokens were taken ahead, with its batch's (see :meth:`lease`);
        ``before_send`` runs right before the envelope's data goes to a relay."""
        tried: list[Relay] = []
        result: SendResult | None = None
        chained_on = transport.opened(envelope)
        for _ in range(_TRIES):
            if chained_on is not None:  # relay chosen and tokens taken when it was chained
                relay, chained_on = chained_on, None
                if not self._is_current(delivery):
                    return GiveBack.STALE
            else:
                chosen = self._admitted_relay(
                    delivery, job, envelope, tried, drawn=drawn, leased=leased
                )
                if chosen is None:
                    break
                if not isinstance(chosen, Relay):
                    return chosen
                relay = chosen
            leased = False  # a second relay's try takes tokens of its own
            try:
                if before_send is not None:
                    before_send()
                following = self._look_ahead(then, relay)
                result = transport.send(envelope, relay, following)
            except BaseException:
                self._pool.release(relay)
                raise
            self._pool.record(relay, failed=result.relay_failed)
            if not result.relay_failed:
                return result
            tried.append(relay)
        return result if result is not None else no_relay(envelope)

    def _admitted_relay(
        self,
        delivery: Delivery,
        job: EmailJob,
        envelope: Envelope,
        tried: list[Relay],
        *,
        drawn: Relay | None,
        leased: bool,
    ) -> Relay | GiveBack | OverBudget | None:
        """A usable relay with the envelope's tokens taken, or why the delivery goes back;
        None when no relay is usable. A relay whose own budget is spent (a source IP that
        warms up) is passed over for another one of the pool while any is left."""
        spent: OverBudget | None = None
        passed: list[Relay] = []
        while True:
            relay = self._pool.choose(exclude=[*tried, *passed], preferred=drawn)
            if relay is None:
                return spent
            verdict = self._admit(delivery, job, envelope, relay, leased=leased)
            if verdict is None:
                return relay
            self._pool.release(relay)
            if not (isinstance(verdict, OverBudget) and verdict.per_relay):
                return verdict
            if spent is None or verdict.wait_seconds < spent.wait_seconds:
                spent = verdict
            passed.append(relay)
            drawn = None

    @staticmethod
    def _look_ahead(then: NextOnRelay | None, relay: Relay) -> Envelope | None:
        """The envelope to chain behind this one, if any. Chaining only saves round trips:
        a failure while preparing the next job is that job's, met again on its own turn,
        and must not fail this one."""
        if then is None:
            return None
        try:
            return then(relay)
        except Exception:
            log.exception("chain_look_ahead_failed", relay=relay.name)
            return None

    def draw(self) -> Relay | None:
        """The next envelope's relay, drawn by weight ahead of its turn (then passed back to
        :meth:`dispatch` as ``drawn``)."""
        return self._pool.draw()

    def may_follow(
        self,
        delivery: Delivery,
        job: EmailJob,
        envelope: Envelope,
        relay: Relay,
        *,
        leased: bool = False,
    ) -> bool:
        """Whether ``envelope``, drawn for ``relay``, may be chained on it now: its delivery is
        still current and its tokens are there right now (then taken). If the chain breaks
        before it is sent, it takes the ordinary path and its tokens again: a rare
        over-count, never an under-count."""
        if not self._is_current(delivery):
            return False
        return (
            leased
            or self._admission is None
            or self._admission.try_admit(delivery, job, envelope.recipients, relay)
        )

    def plan_lease(self, jobs: Sequence[tuple[Delivery, EmailJob, list[str]]]) -> LeasePlan:
        """The script calls that take a batch's tokens ahead, where they are there now."""
        if self._admission is None:
            return LeasePlan([False] * len(jobs), [], [])
        return self._admission.plan_lease(jobs)

    def finish_lease(
        self,
        jobs: Sequence[tuple[Delivery, EmailJob, list[str]]],
        plan: LeasePlan,
        answers: Sequence[list[int]],
    ) -> list[bool]:
        """Which of the batch's jobs got their tokens ahead."""
        if self._admission is None:
            return plan.granted
        return self._admission.finish_lease(jobs, plan, answers)

    def _admit(
        self, delivery: Delivery, job: EmailJob, envelope: Envelope, relay: Relay, *, leased: bool
    ) -> GiveBack | OverBudget | None:
        """None once the envelope may go (its tokens taken), else why it goes back."""
        verdict = (
            None
            if self._admission is None or leased
            else self._admission.admit(delivery, job, envelope.recipients, relay)
        )
        # The delivery may have outlived its connection while it waited: the broker has
        # requeued it for someone else, so sending now could mail it twice.
        if verdict is None and not self._is_current(delivery):
            return GiveBack.STALE
        return verdict
