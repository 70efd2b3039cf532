"""The Dispatcher: one envelope through a relay, with the breaker told how the relay did, one
more try on another relay when it failed, and nothing sent for a delivery that went stale or
was given back by admission."""

from __future__ import annotations

import threading

import pytest

from mailfleet.shared.durations import Rate
from mailfleet.shared.relays import Relay
from mailfleet.shared.settings import Settings
from mailfleet.worker.dispatch import Dispatcher
from mailfleet.worker.inbox import Delivery, GiveBack, Inbox
from mailfleet.worker.limits.admission import Admission
from mailfleet.worker.limits.buckets import TokenGrant
from mailfleet.worker.metrics import WorkerMetrics
from mailfleet.worker.redis_gate import RedisGate
from mailfleet.worker.smtp.relay_pool import BreakerState, RelayPool
from mailfleet.worker.smtp.replies import SmtpReply
from mailfleet.worker.smtp.transport import Envelope, SendResult
from tests.unit.fakes import (
    FakeLimiter,
    FakeTransport,
    accept,
    make_delivery,
    make_job,
    refuse_all,
)

A = Relay.parse("smtp://127.0.0.1:2501")
B = Relay.parse("smtp://127.0.0.1:2502")
C = Relay.parse("smtp://127.0.0.1:2503")
DROPPED = SmtpReply(0, "ConnectionResetError: dropped")
BUSY = SmtpReply(450, "4.2.0 mailbox busy")
JOB = make_job(1, to=["ann@example.org", "bob@slow.example"])


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def envelope(*recipients: str) -> Envelope:
    return Envelope("sender@example.com", list(recipients or JOB.recipients()), b"message")


def admission(
    limiter: FakeLimiter, inbox: Inbox | None = None, stopping: threading.Event | None = None
) -> Admission:
    stopping = stopping or threading.Event()
    return Admission(limiter, RedisGate(stopping), inbox or Inbox(), WorkerMetrics(), stopping)


def never_current(delivery: Delivery) -> bool:
    return False


def half_open(relay: Relay) -> RelayPool:
    """A pool of ``relay`` alone, its cool-down just over: the next send is its one probe."""
    clock = FakeClock()
    pool = RelayPool([relay], failures_to_open=1, cooldown=10, clock=clock)
    pool.record(relay, failed=True)
    clock.now += 10
    assert BreakerState.HALF_OPEN == pool.states()[relay.name]
    return pool


class TestFailover:
    def test_a_failed_relay_is_recorded_and_the_send_tried_once_on_another(self) -> None:
        pool = RelayPool([A, B], failures_to_open=1, cooldown=60)
        transport = FakeTransport(refuse_all(DROPPED, relay_failed=True), accept())
        result = Dispatcher(pool, None).dispatch(
            make_delivery(JOB), JOB, envelope(), transport, drawn=A
        )

        assert isinstance(result, SendResult)
        assert ("127.0.0.1:2502", JOB.recipients()) == (result.relay, result.accepted)
        assert [A, B] == [sent.relay for sent in transport.sends]
        assert {A.name: BreakerState.OPEN, B.name: BreakerState.CLOSED} == pool.states()

    def test_two_failed_relays_end_the_attempt_with_the_last_failure(self) -> None:
        pool = RelayPool([A, B, C], failures_to_open=3, cooldown=60)
        transport = FakeTransport(
            refuse_all(DROPPED, relay_failed=True), refuse_all(DROPPED, relay_failed=True)
        )
        result = Dispatcher(pool, None).dispatch(make_delivery(JOB), JOB, envelope(), transport)

        assert isinstance(result, SendResult)
        assert result.relay_failed
        assert dict.fromkeys(JOB.recipients(), DROPPED) == result.refused
        relays = [sent.relay for sent in transport.sends]
        assert 2 == len(set(relays))  # two different relays, never the third

    def test_refused_recipients_are_not_a_relay_failure(self) -> None:
        pool = RelayPool([A, B], failures_to_open=1, cooldown=60)
        transport = FakeTransport(refuse_all(BUSY))
        result = Dispatcher(pool, None).dispatch(make_delivery(JOB), JOB, envelope(), transport)

        assert isinstance(result, SendResult)
        assert not result.relay_failed
        assert 1 == len(transport.sends)
        assert {BreakerState.CLOSED} == set(pool.states().values())

    def test_a_success_closes_a_half_open_relay(self) -> None:
        pool = half_open(A)
        Dispatcher(pool, None).dispatch(make_delivery(JOB), JOB, envelope(), FakeTransport())
        assert BreakerState.CLOSED == pool.states()[A.name]

    def test_every_breaker_open_is_a_transient_no_relay_result(self) -> None:
        pool = RelayPool([A, B], failures_to_open=1, cooldown=60)
        pool.record(A, failed=True)
        pool.record(B, failed=True)
        transport = FakeTransport()
        result = Dispatcher(pool, None).dispatch(make_delivery(JOB), JOB, envelope(), transport)

        assert isinstance(result, SendResult)
        assert ("none", True, []) == (result.relay, result.relay_failed, result.accepted)
        assert set(JOB.recipients()) == set(result.refused)
        assert {0} == {reply.code for reply in result.refused.values()}
        assert [] == transport.sends

    def test_a_transport_that_raises_frees_the_relay_s_probe(self) -> None:
        pool = half_open(A)
        transport = FakeTransport(RuntimeError("bug"))
        with pytest.raises(RuntimeError):
            Dispatcher(pool, None).dispatch(make_delivery(JOB), JOB, envelope(), transport)
        assert A == pool.choose()


class TestGivenBack:
    def test_a_delivery_gone_stale_is_given_back_unsent_and_the_probe_freed(self) -> None:
        pool = half_open(A)
        transport = FakeTransport()
        result = Dispatcher(pool, None, never_current).dispatch(
            make_delivery(JOB), JOB, envelope(), transport
        )

        assert GiveBack.STALE is result
        assert [] == transport.sends
        assert A == pool.choose()  # released: the probe may still be made

    def test_a_delivery_that_goes_stale_while_it_waits_for_tokens_is_not_sent(self) -> None:
        generation = {"now": 1}
        delivery = make_delivery(JOB, generation=1)

        def reconnect() -> TokenGrant:
            generation["now"] = 2  # the connection was lost while this send waited
            return TokenGrant(True, 0.0)

        limiter = FakeLimiter(Settings(rate_limit=Rate.parse("10/s")), reconnect)
        dispatcher = Dispatcher(
            RelayPool([A], 3, 60), admission(limiter), lambda d: d.generation == generation["now"]
        )
        transport = FakeTransport()

        assert GiveBack.STALE is dispatcher.dispatch(delivery, JOB, envelope(), transport)
        assert [] == transport.sends
        assert 1 == len(limiter.takes)

    def test_a_delivery_admission_parks_is_given_back_unsent_and_the_probe_freed(self) -> None:
        settings = Settings(domain_limits={"slow.example": Rate.parse("1/s")})
        limiter = FakeLimiter(settings)
        [bucket] = limiter.buckets_for(JOB, JOB.recipients())
        limiter.grants.append(TokenGrant(False, 0.5, blocking=bucket))
        inbox = Inbox()
        inbox.put(make_delivery(make_job(2), tag=2))  # other work ready: park this one
        pool = half_open(A)
        transport = FakeTransport()
        delivery = make_delivery(JOB)
        result = Dispatcher(pool, admission(limiter, inbox)).dispatch(
            delivery, JOB, envelope(), transport
        )

        assert GiveBack.PARKED is result
        assert [] == transport.sends
        assert A == pool.choose()
        assert 2 == inbox.waiting

    def test_a_worker_stopping_while_it_waits_gives_the_delivery_back(self) -> None:
        stopping = threading.Event()
        stopping.set()
        limiter = FakeLimiter(Settings(rate_limit=Rate.parse("10/s")))
        transport = FakeTransport()
        dispatcher = Dispatcher(RelayPool([A], 3, 60), admission(limiter, stopping=stopping))

        assert GiveBack.STOPPING is dispatcher.dispatch(
            make_delivery(JOB), JOB, envelope(), transport
        )
        assert [] == transport.sends


class TestTokens:
    def test_leased_tokens_serve_the_first_relay_and_a_failover_takes_its_own(self) -> None:
        limiter = FakeLimiter(Settings(rate_limit=Rate.parse("100/s")))
        pool = RelayPool([A, B], failures_to_open=3, cooldown=60)
        transport = FakeTransport(refuse_all(DROPPED, relay_failed=True))
        result = Dispatcher(pool, admission(limiter)).dispatch(
            make_delivery(JOB), JOB, envelope(), transport, leased=True
        )

        assert isinstance(result, SendResult)
        assert result.accepted
        assert 2 == len(transport.sends)
        assert 1 == len(limiter.takes)  # for the second relay only

    def test_without_a_lease_each_relay_tried_takes_tokens(self) -> None:
        limiter = FakeLimiter(Settings(rate_limit=Rate.parse("100/s")))
        pool = RelayPool([A, B], failures_to_open=3, cooldown=60)
        transport = FakeTransport(refuse_all(DROPPED, relay_failed=True))
        Dispatcher(pool, admission(limiter)).dispatch(
            make_delivery(JOB), JOB, envelope(), transport
        )

        assert 2 == len(limiter.takes)

    def test_the_lease_is_all_refused_without_admission(self) -> None:
        dispatcher = Dispatcher(RelayPool([A], 3, 60), None)
        asked = [(make_delivery(JOB), JOB, JOB.recipients())] * 2
        plan = dispatcher.plan_lease(asked)

        assert ([False, False], []) == (plan.granted, plan.calls)
        assert [False, False] == dispatcher.finish_lease(asked, plan, [])


class TestChained:
    def test_an_envelope_opened_behind_another_goes_on_that_relay_without_new_tokens(
        self,
    ) -> None:
        limiter = FakeLimiter(Settings(rate_limit=Rate.parse("100/s")))
        pool = RelayPool([A, B], failures_to_open=3, cooldown=60)
        dispatcher = Dispatcher(pool, admission(limiter))
        transport = FakeTransport(pipelining=True)
        first, second = envelope("ann@example.org"), envelope("bob@slow.example")
        dispatcher.dispatch(make_delivery(JOB), JOB, first, transport, then=lambda relay: second)
        chained_on = transport.sends[0].relay
        result = dispatcher.dispatch(make_delivery(JOB, tag=2), JOB, second, transport)

        assert isinstance(result, SendResult)
        assert second is transport.sends[0].then
        assert [chained_on, chained_on] == [sent.relay for sent in transport.sends]
        assert 1 == len(limiter.takes)  # the chained one's were taken when it was chained

    def test_a_chained_envelope_whose_delivery_went_stale_is_given_back(self) -> None:
        pool = RelayPool([A], failures_to_open=3, cooldown=60)
        transport = FakeTransport(pipelining=True)
        first, second = envelope("ann@example.org"), envelope("bob@slow.example")
        current = make_delivery(JOB, generation=2)
        stale = make_delivery(JOB, tag=2, generation=1)
        dispatcher = Dispatcher(pool, None, lambda delivery: delivery.generation == 2)
        dispatcher.dispatch(current, JOB, first, transport, then=lambda relay: second)

        assert GiveBack.STALE is dispatcher.dispatch(stale, JOB, second, transport)
        assert 1 == len(transport.sends)

    def test_may_follow_only_while_current_and_with_tokens(self) -> None:
        settings = Settings(rate_limit=Rate.parse("100/s"))
        bucket = FakeLimiter(settings).buckets_for(JOB, JOB.recipients())[0]
        limiter = FakeLimiter(settings, TokenGrant(False, 0.2, blocking=bucket))
        pool = RelayPool([A], failures_to_open=3, cooldown=60)
        delivery = make_delivery(JOB)
        env = envelope()

        assert not Dispatcher(pool, None, never_current).may_follow(delivery, JOB, env, A)
        assert Dispatcher(pool, None).may_follow(delivery, JOB, env, A)
        dispatcher = Dispatcher(pool, admission(limiter))
        assert dispatcher.may_follow(delivery, JOB, env, A, leased=True)
        assert [] == limiter.takes
        assert not dispatcher.may_follow(delivery, JOB, env, A)  # refused: no wait, no park
        assert 1 == len(limiter.takes)


def test_a_look_ahead_that_fails_costs_this_send_nothing() -> None:
    """Preparing the next job to chain raised: this one is sent all the same, and the
    half-open relay's probe is settled, not left taken."""
    pool = half_open(A)

    def then(relay: Relay) -> Envelope | None:
        raise RuntimeError("the next job's envelope failed")

    transport = FakeTransport(pipelining=True)
    result = Dispatcher(pool, None).dispatch(
        make_delivery(JOB), JOB, envelope(), transport, then=then
    )
    assert isinstance(result, SendResult)
    assert not result.relay_failed
    assert A == pool.choose()


def test_a_leased_chained_send_that_fails_over_takes_tokens_for_the_other_relay() -> None:
    limiter = FakeLimiter(Settings(rate_limit=Rate.parse("100/s")))
    dispatcher = Dispatcher(RelayPool([A, B], 3, 60), admission(limiter))
    transport = FakeTransport(accept(), refuse_all(DROPPED, relay_failed=True), pipelining=True)
    first, second = envelope("ann@example.org"), envelope("bob@slow.example")
    dispatcher.dispatch(
        make_delivery(JOB), JOB, first, transport, then=lambda relay: second, leased=True
    )
    dispatcher.dispatch(make_delivery(JOB, tag=2), JOB, second, transport, leased=True)
    assert 3 == len(transport.sends)
    assert 1 == len(limiter.takes)  # the second relay's try took a token of its own
