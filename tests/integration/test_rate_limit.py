"""The fleet-wide rate limit on real Redis: the script's arithmetic, the limit held across
worker processes (counted at the relay), transactional mail ahead of a bulk backlog, and a
Redis outage that loses nothing."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import redis
from pydantic import SecretStr

from mailfleet.producer.devtools.sink import SmtpSink
from mailfleet.producer.publisher import Producer
from mailfleet.shared.durations import Rate
from mailfleet.shared.job import Lane
from mailfleet.shared.redis_client import make_redis
from mailfleet.shared.relays import Relay
from mailfleet.shared.settings import Settings
from mailfleet.worker.limits.bucket import Bucket
from mailfleet.worker.limits.buckets import RateLimiter
from tests.integration.helpers import (
    DeliveryLedger,
    WorkerProcess,
    WorkerThread,
    make_job,
    wait_until,
)
from tests.integration.outages import own_redis


def _bucket(settings: Settings, name: str, rate: str, burst: int) -> Bucket:
    return Bucket(settings.names.redis_key("rate", name), name, Rate.parse(rate), burst)


def _max_in_any_second(times: list[float]) -> int:
    ordered = sorted(times)
    best, start = 0, 0
    for end, moment in enumerate(ordered):
        while moment - ordered[start] >= 1.0:
            start += 1
        best = max(best, end - start + 1)
    return best


@pytest.fixture
def limiter(settings: Settings, redis_client: redis.Redis) -> RateLimiter:
    return RateLimiter(redis_client, settings)


class TestBucketScript:
    def test_a_full_bucket_grants_its_burst_then_refills_at_the_rate(
        self, settings: Settings, limiter: RateLimiter
    ) -> None:
        """Burst 5 at 50/s: five at once, the sixth told to wait ~20 ms, then granted."""
        bucket = _bucket(settings, "b1", "50/s", 5)
        grants = [limiter.try_take([bucket]).granted for _ in range(6)]
        refused = limiter.try_take([bucket])

        assert [True] * 5 + [False] == grants
        assert not refused.granted
        assert 0.0 < refused.wait_seconds <= 0.021
        time.sleep(refused.wait_seconds)
        assert limiter.try_take([bucket]).granted

    def test_several_buckets_are_all_or_nothing(
        self, settings: Settings, limiter: RateLimiter
    ) -> None:
        """If one bucket is empty nothing is taken from the others."""
        roomy = _bucket(settings, "roomy", "1000/s", 3)
        empty = _bucket(settings, "empty", "1/m", 1)
        assert limiter.try_take([empty]).granted

        for _ in range(5):
            assert not limiter.try_take([roomy, empty]).granted

        assert [True, True, True] == [limiter.try_take([roomy]).granted for _ in range(3)]

    def test_concurrent_clients_never_get_more_than_rate_plus_burst(
        self, settings: Settings
    ) -> None:
        """Eight clients hammering for 1.5 s at 200/s, burst 10: grants <= 200 * t + 10."""
        bucket = _bucket(settings, "shared", "200/s", 10)
        granted: list[float] = []
        lock = threading.Lock()
        started = time.monotonic()

        def client() -> None:
            own = RateLimiter(make_redis(settings), settings)
            while (elapsed := time.monotonic() - started) < 1.5:
                admission = own.try_take([bucket])
                if admission.granted:
                    with lock:
                        granted.append(elapsed)
                else:
                    time.sleep(admission.wait_seconds)

        threads = [threading.Thread(target=client) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert len(granted) <= 200 * 1.5 + 10 + 1
        assert len(granted) >= 200 * 1.5 * 0.7  # a loose floor: the bucket must not starve
        assert _max_in_any_second(granted) <= 200 + 10


class TestFleetLimit:
    def test_three_worker_processes_hold_the_limit_at_the_relay(
        self, settings: Settings, producer: Producer, smtp_server: SmtpSink
    ) -> None:
        """3 workers at 10/s, burst 2: no 1-second window at the relay holds more than 12 (+1).

        Tokens are exact on Redis's clock; arrival at the relay adds the send's own jitter,
        which on a loaded two-core machine can carry one message into the next window. A low
        rate keeps that jitter small against the token spacing (100 ms).
        """
        limited = settings.model_copy(update={"rate_limit": Rate.parse("10/s"), "rate_burst": 2})
        workers = [WorkerProcess(limited) for _ in range(3)]
        try:
            # Measure the steady state, not three interpreters starting on two cores.
            for worker in workers:
                assert wait_until(lambda w=worker: "worker_started" in w.log(), 30), worker.log()
            ledger = DeliveryLedger(
                confirmed=set(producer.publish_many(make_job(n) for n in range(60)))
            )
            assert wait_until(lambda: smtp_server.count >= 60, timeout=60), workers[0].log()
            for worker in workers:
                assert 0 == worker.terminate(timeout=30), worker.log()
        finally:
            for worker in workers:
                worker.stop()

        ledger.record_relay(smtp_server)
        assert set() == ledger.lost
        arrivals = [message.received_at for message in smtp_server.messages]
        assert _max_in_any_second(arrivals) <= 10 + 2 + 1, sorted(arrivals)
        assert 60 / (max(arrivals) - min(arrivals)) > 10 * 0.9

    def test_a_transactional_job_does_not_wait_for_a_bulk_backlog(
        self, settings: Settings, producer: Producer, smtp_server: SmtpSink
    ) -> None:
        """At 20/s, a transactional job published behind 100 bulk ones is sent within ~1 s."""
        limited = settings.model_copy(update={"rate_limit": Rate.parse("20/s"), "rate_burst": 1})
        producer.publish_many(make_job(n, lane="bulk") for n in range(100))
        worker = WorkerThread(limited, burst=True)
        assert wait_until(lambda: smtp_server.count >= 10, timeout=10)
        producer.publish(make_job(999))
        assert wait_until(lambda: "job-999" in _ids(smtp_server), timeout=30)
        delivered_before = _ids(smtp_server).index("job-999")
        worker.stop()

        assert delivered_before <= 10 + 25


def _ids(sink: SmtpSink) -> list[str | None]:
    return [message.job_id for message in sink.messages]


@pytest.fixture
def redis_of_our_own() -> Iterator[object]:
    with own_redis() as server:
        yield server


class TestRedisOutage:
    def test_a_redis_outage_mid_run_stops_sending_and_loses_nothing(
        self, settings: Settings, producer: Producer, smtp_server: SmtpSink
    ) -> None:
        """Redis dies mid-run: nothing is sent while it is gone, /readyz fails, and once it is
        back the run completes with no job lost."""
        with own_redis() as server:
            limited = settings.model_copy(
                update={
                    "redis_url": SecretStr(server.url),
                    "rate_limit": Rate.parse("50/s"),
                    "rate_burst": 1,
                }
            )
            ledger = DeliveryLedger(
                confirmed=set(producer.publish_many(make_job(n) for n in range(150)))
            )
            worker = WorkerThread(limited)
            assert wait_until(lambda: smtp_server.count >= 30, timeout=20)

            server.stop()
            time.sleep(0.5)  # sends that already held a token may still land
            during_outage = smtp_server.count
            assert wait_until(lambda: not worker.worker.ready, timeout=10)
            time.sleep(2.0)  # a bounded outage: nothing may be sent through it
            assert during_outage == smtp_server.count

            server.start()
            assert wait_until(lambda: smtp_server.count >= 150, timeout=60)
            assert wait_until(lambda: worker.worker.ready, timeout=10)
            assert 0 == worker.stop()

        ledger.record_relay(smtp_server)
        assert set() == ledger.lost


class TestTransactionalReserve:
    def test_bulk_leaves_half_the_burst_to_transactional_mail(
        self, settings: Settings, limiter: RateLimiter
    ) -> None:
        """Burst 10: bulk drains at most 5 at once, transactional then still gets 5 more."""
        bucket = _bucket(settings, "reserve", "10/s", 10)

        bulk = [limiter.try_take([bucket], Lane.BULK).granted for _ in range(7)]
        transactional = [limiter.try_take([bucket], Lane.TRANSACTIONAL).granted for _ in range(6)]

        assert [True] * 5 + [False] * 2 == bulk
        assert [True] * 5 + [False] == transactional


class TestWhichBuckets:
    def test_a_job_takes_from_global_domain_lane_and_relay_buckets(
        self, settings: Settings, redis_client: redis.Redis
    ) -> None:
        """Global, each limited recipient domain, the job's lane and the relay's own rate."""
        relay = Relay.parse("smtp://127.0.0.1:2525?rate=5/s")
        tuned = settings.model_copy(
            update={
                "rate_limit": Rate.parse("100/s"),
                "domain_limits": {"gmail.com": Rate.parse("20/s")},
                "lane_limits": {Lane.BULK: Rate.parse("50/s")},
                "smtp_relays": [relay],
            }
        )
        limiter = RateLimiter(redis_client, tuned)
        job = make_job(1, to=["a@gmail.com", "b@example.org"], lane="bulk")

        buckets = limiter.buckets_for(job, job.recipients(), relay)

        assert ["global", "domain gmail.com", "lane bulk", "relay 127.0.0.1:2525"] == [
            bucket.label for bucket in buckets
        ]
        assert ["100/s", "20/s", "50/s", "5/s"] == [str(bucket.rate) for bucket in buckets]
        assert limiter.try_take(buckets, Lane.BULK).granted
