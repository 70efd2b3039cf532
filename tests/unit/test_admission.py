"""Admission: a job's tokens, taken before its send. Granted, it goes; refused by a bucket not
every job needs while other work is ready, it is parked in the inbox; the global bucket is
waited for in place; a bulk job steps aside for transactional mail; a stopping worker gives
it back. A batch's tokens are asked for ahead, one script call per group of alike jobs."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import pytest

from mailfleet.shared.durations import Rate
from mailfleet.shared.errors import RedisUnavailable
from mailfleet.shared.job import EmailJob, Lane
from mailfleet.shared.limit_spec import Limit
from mailfleet.shared.relays import Relay
from mailfleet.shared.settings import Settings
from mailfleet.worker.inbox import Delivery, GiveBack, Inbox, OverBudget
from mailfleet.worker.limits.admission import Admission
from mailfleet.worker.limits.bucket import Bucket
from mailfleet.worker.limits.buckets import TokenGrant
from mailfleet.worker.metrics import WorkerMetrics
from mailfleet.worker.redis_gate import RedisGate
from tests.unit.fakes import FakeLimiter, Grant, make_delivery, make_job, raw_grant

SETTINGS = Settings(
    namespace="unit",
    rate_limit=Rate.parse("100/s"),
    domain_limits={"slow.example": Rate.parse("1/s")},
)
FAST = make_job(1, to=["ann@example.org"])  # the global bucket only
SLOW = make_job(2, to=["bob@slow.example"])  # the global bucket and slow.example's
Asked = list[tuple[Delivery, EmailJob, list[str]]]


class Rig:
    def __init__(self, *grants: Grant, settings: Settings = SETTINGS) -> None:
        self.limiter = FakeLimiter(settings, *grants)
        self.inbox = Inbox()
        self.stopping = threading.Event()
        self.metrics = WorkerMetrics()
        self.admission = Admission(
            self.limiter, RedisGate(self.stopping), self.inbox, self.metrics, self.stopping
        )

    def buckets(self, job: EmailJob) -> list[Bucket]:
        return self.limiter.buckets_for(job, job.recipients())

    def domain_bucket(self) -> Bucket:
        return self.buckets(SLOW)[1]

    def global_bucket(self) -> Bucket:
        return self.buckets(FAST)[0]

    def admit(self, delivery: Delivery, job: EmailJob) -> GiveBack | None:
        return self.admission.admit(delivery, job, job.recipients())

    def other_work(self, lane: Lane = Lane.TRANSACTIONAL) -> Delivery:
        """A delivery ready in the inbox, which this thread could be sending instead."""
        other = make_delivery(make_job(99, lane=lane.value), tag=99)
        self.inbox.put(other)
        return other

    @property
    def waited(self) -> float:
        return self.metrics.registry.get_sample_value("mailfleet_token_wait_seconds_count") or 0


def asked(*jobs: EmailJob) -> Asked:
    return [
        (make_delivery(job, tag=index), job, job.recipients())
        for index, job in enumerate(jobs, start=1)
    ]


def tags(deliveries: Sequence[Delivery]) -> list[int]:
    return [delivery.delivery_tag for delivery in deliveries]


class TestAdmit:
    def test_a_job_no_bucket_applies_to_goes_without_asking(self) -> None:
        rig = Rig(settings=Settings(domain_limits={"slow.example": Rate.parse("1/s")}))
        assert rig.admit(make_delivery(FAST), FAST) is None
        assert [] == rig.limiter.takes

    def test_granted_tokens_let_the_job_go(self) -> None:
        rig = Rig(TokenGrant(True, 0.0, at_us=7))
        delivery = make_delivery(SLOW)
        assert rig.admit(delivery, SLOW) is None
        assert [(rig.buckets(SLOW), Lane.TRANSACTIONAL)] == rig.limiter.takes
        assert 1 == rig.waited

    def test_a_busy_domain_parks_the_job_while_other_work_is_ready(self) -> None:
        rig = Rig()
        rig.limiter.grants.append(TokenGrant(False, 5.0, blocking=rig.domain_bucket()))
        other = rig.other_work()
        delivery = make_delivery(SLOW, tag=2)
        started = time.monotonic()

        assert GiveBack.PARKED is rig.admit(delivery, SLOW)
        assert time.monotonic() - started < 2.5  # parked, not waited for
        assert 2 == rig.inbox.waiting
        assert [other.delivery_tag] == tags(rig.inbox.take_batch(5, timeout=0))  # not yet due
        assert 0 == rig.waited

    def test_a_domain_known_busy_parks_the_next_job_without_asking_redis(self) -> None:
        rig = Rig()
        rig.limiter.grants.append(TokenGrant(False, 5.0, blocking=rig.domain_bucket()))
        rig.other_work()
        assert GiveBack.PARKED is rig.admit(make_delivery(SLOW, tag=2), SLOW)
        assert GiveBack.PARKED is rig.admit(make_delivery(SLOW, tag=3), SLOW)
        assert 1 == len(rig.limiter.takes)
        assert rig.admit(make_delivery(FAST, tag=4), FAST) is None  # other domains flow

    def test_with_nothing_else_to_do_the_job_waits_for_its_domain_in_place(self) -> None:
        rig = Rig()
        rig.limiter.grants.append(TokenGrant(False, 0.05, blocking=rig.domain_bucket()))
        started = time.monotonic()

        assert rig.admit(make_delivery(SLOW), SLOW) is None
        assert time.monotonic() - started >= 0.04
        assert 2 == len(rig.limiter.takes)
        assert 0 == rig.inbox.waiting

    def test_the_global_bucket_is_waited_for_in_place_even_with_other_work_ready(self) -> None:
        rig = Rig()
        rig.limiter.grants.append(TokenGrant(False, 0.05, blocking=rig.global_bucket()))
        rig.other_work()

        assert rig.admit(make_delivery(FAST), FAST) is None
        assert 2 == len(rig.limiter.takes)
        assert 1 == rig.inbox.waiting  # only the other one

    def test_a_bulk_job_waiting_steps_aside_for_transactional_mail(self) -> None:
        bulk = make_job(3, lane="bulk")
        rig = Rig()
        rig.limiter.grants.append(TokenGrant(False, 5.0, blocking=rig.global_bucket()))
        rig.other_work(Lane.TRANSACTIONAL)
        delivery = make_delivery(bulk, tag=3)
        started = time.monotonic()

        assert GiveBack.PARKED is rig.admit(delivery, bulk)
        assert time.monotonic() - started < 2.5
        assert [99, 3] == tags(rig.inbox.take_batch(5, timeout=0))  # ready again at once

    def test_a_stopping_worker_gives_the_job_back(self) -> None:
        rig = Rig()
        rig.stopping.set()
        assert GiveBack.STOPPING is rig.admit(make_delivery(FAST), FAST)
        assert [] == rig.limiter.takes

    def test_redis_down_while_stopping_gives_the_job_back(self) -> None:
        rig = Rig()

        def down() -> TokenGrant:
            rig.stopping.set()
            raise RedisUnavailable("down")

        rig.limiter.grants.append(down)
        assert GiveBack.STOPPING is rig.admit(make_delivery(FAST), FAST)

    def test_redis_down_holds_the_job_until_it_answers(self) -> None:
        rig = Rig(RedisUnavailable("down"), TokenGrant(True, 0.0))
        assert rig.admit(make_delivery(FAST), FAST) is None
        assert 2 == len(rig.limiter.takes)


class TestTryAdmit:
    relay = Relay.parse("smtp://127.0.0.1:2501")

    def test_granted_or_refused_at_once_never_waiting_or_parking(self) -> None:
        rig = Rig(TokenGrant(True, 0.0))
        delivery = make_delivery(FAST)
        assert rig.admission.try_admit(delivery, FAST, FAST.recipients(), self.relay)
        rig.limiter.grants.append(TokenGrant(False, 5.0, blocking=rig.global_bucket()))
        rig.other_work()
        started = time.monotonic()
        assert not rig.admission.try_admit(delivery, FAST, FAST.recipients(), self.relay)
        assert time.monotonic() - started < 2.5
        assert 1 == rig.inbox.waiting

    def test_redis_down_is_a_refusal(self) -> None:
        rig = Rig(RedisUnavailable("down"))
        assert not rig.admission.try_admit(
            make_delivery(FAST), FAST, ["ann@example.org"], self.relay
        )

    def test_a_bucket_known_busy_is_refused_without_asking(self) -> None:
        rig = Rig()
        rig.limiter.grants.append(TokenGrant(False, 5.0, blocking=rig.domain_bucket()))
        rig.other_work()
        rig.admit(make_delivery(SLOW), SLOW)  # parked: slow.example is busy for 5 s
        assert not rig.admission.try_admit(
            make_delivery(SLOW, tag=2), SLOW, SLOW.recipients(), self.relay
        )
        assert 1 == len(rig.limiter.takes)


class TestPlanLease:
    def test_jobs_that_share_their_buckets_take_them_in_one_call(self) -> None:
        rig = Rig()
        jobs = asked(make_job(1), make_job(2), make_job(3))  # all to example.org
        plan = rig.admission.plan_lease(jobs)

        assert [False, False, False] == plan.granted
        [call] = plan.calls
        assert 3 == call.args[-1]  # three tokens at once
        assert rig.global_bucket().key in call.keys
        assert [(rig.buckets(FAST), [0, 1, 2])] == plan.takers

    def test_jobs_with_other_buckets_or_another_lane_take_theirs_apart(self) -> None:
        rig = Rig()
        bulk = make_job(5, lane="bulk")
        plan = rig.admission.plan_lease(asked(FAST, SLOW, make_job(4), bulk))

        assert [[0, 2], [1], [3]] == [indexes for _, indexes in plan.takers]
        assert [2, 1, 1] == [call.args[-1] for call in plan.calls]
        assert rig.domain_bucket().key in plan.calls[1].keys

    def test_a_job_without_buckets_is_granted_ahead_with_no_call(self) -> None:
        rig = Rig(settings=Settings(domain_limits={"slow.example": Rate.parse("1/s")}))
        plan = rig.admission.plan_lease(asked(FAST, SLOW))

        assert [True, False] == plan.granted
        assert [[1]] == [indexes for _, indexes in plan.takers]

    def test_no_lease_when_a_relay_has_a_limit_of_its_own(self) -> None:
        relay = Relay.parse("smtp://127.0.0.1:1025?rate=10/s")
        rig = Rig(settings=Settings(smtp_relays=[relay], rate_limit=Rate.parse("100/s")))
        plan = rig.admission.plan_lease(asked(FAST, FAST))

        assert ([False, False], [], []) == (plan.granted, plan.calls, plan.takers)

    def test_a_bucket_known_busy_leaves_its_jobs_out(self) -> None:
        rig = Rig()
        rig.limiter.grants.append(TokenGrant(False, 5.0, blocking=rig.domain_bucket()))
        rig.other_work()
        rig.admit(make_delivery(SLOW), SLOW)
        plan = rig.admission.plan_lease(asked(FAST, SLOW))

        assert [[0]] == [indexes for _, indexes in plan.takers]
        assert [False, False] == plan.granted


class TestFinishLease:
    def test_a_granted_group_gives_every_job_its_tokens(self) -> None:
        rig = Rig()
        jobs = asked(FAST, make_job(3), SLOW)
        plan = rig.admission.plan_lease(jobs)
        answers = [raw_grant(True), raw_grant(True)]

        assert [True, True, True] == rig.admission.finish_lease(jobs, plan, answers)
        assert [] == rig.limiter.takes_many
        assert 3 == rig.waited

    def test_a_refused_group_falls_back_to_one_by_one_in_one_more_round_trip(self) -> None:
        rig = Rig()
        jobs = asked(FAST, make_job(3), make_job(4))
        plan = rig.admission.plan_lease(jobs)
        rig.limiter.many.append(
            [TokenGrant(True, 0.0), TokenGrant(True, 0.0), TokenGrant(False, 0.01)]
        )
        granted = rig.admission.finish_lease(jobs, plan, [raw_grant(False, 10_000, 1)])

        assert [True, True, False] == granted
        [requests] = rig.limiter.takes_many
        assert [(rig.buckets(FAST), Lane.TRANSACTIONAL)] * 3 == requests
        assert 2 == rig.waited

    def test_a_refused_group_of_a_big_batch_takes_no_more_than_8_one_by_one(self) -> None:
        """A limit that binds: 64 bulk jobs must not hoard the bucket while transactional
        mail waits for it; those past the 8th take their tokens on their turn."""
        rig = Rig()
        jobs = asked(*(make_job(number) for number in range(1, 65)))
        plan = rig.admission.plan_lease(jobs)
        granted = rig.admission.finish_lease(jobs, plan, [raw_grant(False, 10_000, 1)])

        [requests] = rig.limiter.takes_many
        assert 8 == len(requests)
        assert [True] * 8 + [False] * 56 == granted

    def test_a_refused_job_alone_in_its_group_waits_for_its_turn(self) -> None:
        rig = Rig()
        jobs = asked(FAST, SLOW)
        plan = rig.admission.plan_lease(jobs)
        granted = rig.admission.finish_lease(
            jobs, plan, [raw_grant(True), raw_grant(False, 900_000, 2)]
        )

        assert [True, False] == granted
        assert [] == rig.limiter.takes_many

    def test_redis_down_for_the_one_by_one_keeps_what_was_granted(self) -> None:
        rig = Rig()
        jobs = asked(FAST, make_job(3), SLOW)
        plan = rig.admission.plan_lease(jobs)
        rig.limiter.many.append(RedisUnavailable("down"))
        granted = rig.admission.finish_lease(jobs, plan, [raw_grant(False), raw_grant(True)])

        assert [False, False, True] == granted  # the two left take the ordinary path
        assert 1 == len(rig.limiter.takes_many)

    @pytest.mark.parametrize("granted", [True, False])
    def test_each_answer_is_read_against_its_own_group(self, granted: bool) -> None:
        rig = Rig()
        jobs = asked(SLOW, FAST)
        plan = rig.admission.plan_lease(jobs)
        result = rig.admission.finish_lease(jobs, plan, [raw_grant(granted), raw_grant(True)])

        assert [granted, True] == result


BUDGETED = Settings(namespace="unit", rate_limit=Limit.parse("100/s,50/d"))


class TestOverBudget:
    """A spent budget is not waited for: the delivery goes back to wait in a delay tier, and
    the budget is known as spent until its window ends, without asking Redis again."""

    def budget(self, rig: Rig) -> Bucket:
        return rig.buckets(FAST)[1]

    def test_a_spent_budget_gives_over_budget_at_once(self) -> None:
        """Refused by the day budget for 5 h: OverBudget with that wait, no waiting, no park."""
        rig = Rig(settings=BUDGETED)
        budget = self.budget(rig)
        assert budget.is_budget
        rig.limiter.grants.append(TokenGrant(False, 18000.0, budget))
        rig.other_work()

        verdict = rig.admit(make_delivery(FAST), FAST)

        assert isinstance(verdict, OverBudget)
        assert (18000.0, "global per day") == (verdict.wait_seconds, verdict.budget)
        assert 1 == len(rig.limiter.takes)
        assert 1 == len(rig.inbox.take_batch(10, 0.0))  # only the other work: nothing parked

    def test_later_jobs_ask_redis_nothing(self) -> None:
        """Once known as spent, the next job needing the budget is sent back without a call."""
        rig = Rig(settings=BUDGETED)
        rig.limiter.grants.append(TokenGrant(False, 60.0, self.budget(rig)))
        rig.admit(make_delivery(FAST), FAST)

        verdict = rig.admit(make_delivery(FAST, tag=2), FAST)

        assert isinstance(verdict, OverBudget)
        assert 0 < verdict.wait_seconds <= 60.0
        assert 1 == len(rig.limiter.takes)

    def test_a_spent_budget_is_left_out_of_the_lease(self) -> None:
        """A batch's lease plans no call for jobs whose budget is known to be spent."""
        rig = Rig(settings=BUDGETED)
        rig.limiter.grants.append(TokenGrant(False, 60.0, self.budget(rig)))
        rig.admit(make_delivery(FAST), FAST)

        plan = rig.admission.plan_lease(asked(FAST, FAST))

        assert ([], [False, False]) == (plan.calls, plan.granted)

    def test_a_pace_refusal_is_not_over_budget(self) -> None:
        """The pace of the same setting still parks or waits as before."""
        rig = Rig(TokenGrant(False, 0.01, None), settings=BUDGETED)
        assert rig.admit(make_delivery(FAST), FAST) is None
        assert 2 == len(rig.limiter.takes)
