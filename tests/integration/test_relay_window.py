"""The rate limit where the relay counts, at the end of each message's DATA: the window the
script keeps on real Redis, and three worker processes held to rate + burst at the relay,
within the send-time allowance the window gives."""

from __future__ import annotations

import json
import time
from dataclasses import replace

import redis

from mailfleet.producer.devtools.sink import SmtpSink
from mailfleet.producer.publisher import Producer
from mailfleet.shared.durations import Rate
from mailfleet.shared.job import Lane
from mailfleet.shared.settings import Settings
from mailfleet.worker.limits.bucket import Bucket
from mailfleet.worker.limits.buckets import RateLimiter
from tests.integration.helpers import DeliveryLedger, WorkerProcess, make_job, wait_until

RATE, BURST = 40, 5
RUNS, JOBS = 10, 100
IDLE = 1.5  # between runs: long enough for the bucket to refill, so every run starts with a burst


def max_in_any_window(times: list[float], length: float = 1.0) -> int:
    """The most of ``times`` in any half-open window [t, t + length)."""
    ordered = sorted(times)
    best, start = 0, 0
    for end, moment in enumerate(ordered):
        while moment - ordered[start] >= length:
            start += 1
        best = max(best, end - start + 1)
    return best


def _bucket(settings: Settings, rate: str, burst: int) -> Bucket:
    return Bucket(settings.names.redis_key("rate", "w"), "w", Rate.parse(rate), burst)


def _redis_now_us(client: redis.Redis) -> int:
    seconds, micros = client.time()
    return int(seconds) * 1_000_000 + int(micros)


def _fill_window(client: redis.Redis, bucket: Bucket, grants: int, at_us: int) -> None:
    """Record ``grants`` earlier grants at ``at_us`` (Redis clock) in the bucket's window."""
    client.lpush(bucket.recent_key, *[at_us] * grants)


class TestWindowScript:
    def test_a_burst_is_paid_back_within_the_window(
        self, settings: Settings, redis_client: redis.Redis
    ) -> None:
        """10/s, burst 5, one greedy client for 2.8 s: 5 at once, 15 in the first 1.4 s, and
        never more than 15 in any 1.4 s (on Redis's clock; the GCRA alone allows 18), then
        the full rate."""
        limiter = RateLimiter(redis_client, settings)
        bucket = _bucket(settings, "10/s", 5)
        granted: list[int] = []
        started = time.monotonic()
        while time.monotonic() - started < 2.8:
            admission = limiter.try_take([bucket])
            if admission.granted:
                granted.append(int(redis_client.lindex(bucket.recent_key, 0) or 0))
            else:
                time.sleep(admission.wait_seconds)

        seconds = [(moment - granted[0]) / 1e6 for moment in granted]
        assert seconds[4] < 0.1 <= seconds[5], seconds[:6]  # the burst, before the refill
        assert seconds[14] < 1.4 <= seconds[15], seconds[10:20]  # the 16th waits for the window
        assert 15 == max_in_any_window(seconds, 1.4)
        assert len(granted) >= 15 + 10 * (2.8 - 1.4) - 2, seconds

    def test_the_window_holds_a_full_bucket_back(
        self, settings: Settings, redis_client: redis.Redis
    ) -> None:
        """40/s, burst 5, 44 grants just recorded and a full bucket: one more is granted,
        the 46th waits for the window (~1.1 s), whatever its lane."""
        limiter = RateLimiter(redis_client, settings)
        bucket = _bucket(settings, "40/s", 5)
        _fill_window(redis_client, bucket, 44, _redis_now_us(redis_client))

        last = limiter.try_take([bucket], Lane.BULK)
        transactional = limiter.try_take([bucket], Lane.TRANSACTIONAL)
        bulk = limiter.try_take([bucket], Lane.BULK)

        assert last.granted
        for refused in (transactional, bulk):
            assert not refused.granted
            assert refused.blocking == bucket
            assert 1.0 < refused.wait_seconds <= 1.1

    def test_when_the_window_lets_go_the_bucket_does_not_burst_again(
        self, settings: Settings, redis_client: redis.Redis
    ) -> None:
        """10/s, burst 5 (window: 15 grants in 1.4 s), 15 grants recorded just under 1.4 s
        ago and a bucket full meanwhile: once the window lets go, bulk gets one token and
        transactional its reserve of two, not a second burst of five."""
        limiter = RateLimiter(redis_client, settings)
        bucket = _bucket(settings, "10/s", 5)
        _fill_window(redis_client, bucket, 15, _redis_now_us(redis_client) - 1_350_000)
        held = limiter.try_take([bucket], Lane.BULK)
        assert not held.granted
        assert held.wait_seconds <= 0.05
        time.sleep(held.wait_seconds)

        bulk = [limiter.try_take([bucket], Lane.BULK).granted for _ in range(2)]
        transactional = [limiter.try_take([bucket]).granted for _ in range(3)]

        assert [True, False] == bulk
        assert [True, True, False] == transactional

    def test_a_slowed_bucket_keeps_the_window_of_its_slower_rate(
        self, settings: Settings, redis_client: redis.Redis
    ) -> None:
        """A domain at 40/s, burst 5, slowed to half: its window is 25 grants in 1.2 s, so
        24 recent grants leave room for one more and 25 none, until 1.2 s after them."""
        limiter = RateLimiter(redis_client, settings)
        bucket = replace(_bucket(settings, "40/s", 5), adaptive="slow.example")
        redis_client.hset(settings.names.redis_key("adaptive"), "slow.example", 0.5)
        _fill_window(redis_client, bucket, 24, _redis_now_us(redis_client))

        first = limiter.try_take([bucket])
        second = limiter.try_take([bucket])

        assert first.granted
        assert not second.granted
        assert 1.1 < second.wait_seconds <= 1.2

    def test_explain_counts_the_window_in_the_wait(
        self, settings: Settings, redis_client: redis.Redis
    ) -> None:
        """A full bucket whose window is full: the next token is the window's, ~1.1 s away."""
        limiter = RateLimiter(redis_client, settings)
        bucket = _bucket(settings, "40/s", 5)
        _fill_window(redis_client, bucket, 45, _redis_now_us(redis_client))

        factor, wait = limiter.state(bucket)
        refused = limiter.try_take([bucket])

        assert 1.0 == factor
        assert 1.0 < wait <= 1.1
        assert not refused.granted
        assert abs(refused.wait_seconds - wait) < 0.05


def _tokens_taken(logs: list[str]) -> dict[str, float]:
    """Job id -> when its token was taken (Redis's clock, seconds), from the workers' logs."""
    taken = {}
    for line in (line for log in logs for line in log.splitlines()):
        if '"token_taken"' in line:
            event = json.loads(line)
            taken[event["job_id"]] = event["at_us"] / 1e6
    return taken


class TestRelayWindow:
    def test_three_worker_processes_hold_rate_plus_burst_at_the_relay(
        self, settings: Settings, producer: Producer, smtp_server: SmtpSink
    ) -> None:
        """3 workers at 40/s, burst 5, 10 runs of 100 jobs, each from a full bucket: no
        1-second window at the relay holds more than 45 of the messages that reached it
        within 100 ms of the fastest send (token to end of DATA), no slack; so a run in which
        no send was slower than that has at most 45 in any second, and each slower message
        adds at most one to the second it lands in.

        That allowance is the window's (4 intervals: 1.1 s hold 45 grants); the limiter does
        not learn when the relay counted, so a stalled send is the one thing it cannot hold
        back. With the GCRA alone the allowance was one interval, and this test saw 46.
        """
        limited = settings.model_copy(
            update={
                "rate_limit": Rate.parse(f"{RATE}/s"),
                "rate_burst": BURST,
                "log_level": "DEBUG",  # the token_taken events
            }
        )
        allowance = Bucket("global", "global", Rate.parse(f"{RATE}/s"), BURST).spread_us / 1e6
        workers = [WorkerProcess(limited) for _ in range(3)]
        firsts: list[int] = []  # index of each run's first message at the relay
        ledger = DeliveryLedger()
        try:
            for worker in workers:
                assert wait_until(lambda w=worker: "worker_started" in w.log(), 30), worker.log()
            for run in range(RUNS):
                time.sleep(IDLE)
                firsts.append(smtp_server.count)
                jobs = (make_job(n) for n in range(run * JOBS, (run + 1) * JOBS))
                ledger.confirmed |= set(producer.publish_many(jobs))
                assert smtp_server.wait_for(firsts[-1] + JOBS, timeout=30), f"run {run}"
            for worker in workers:
                assert 0 == worker.terminate(timeout=30), worker.log()
            taken = _tokens_taken([worker.log() for worker in workers])
        finally:
            for worker in workers:
                worker.stop()

        ledger.record_relay(smtp_server)
        assert set() == ledger.lost
        assert {} == ledger.duplicates
        messages = smtp_server.messages
        assert all(message.job_id in taken for message in messages)
        sends = [message.received_at - taken[str(message.job_id)] for message in messages]
        fastest = min(sends)
        runs = [slice(first, first + JOBS) for first in firsts]
        arrivals = [[m.received_at for m in messages[run]] for run in runs]
        late = [sum(send > fastest + allowance for send in sends[run]) for run in runs]
        maxima = [max_in_any_window(times) for times in arrivals]
        on_time = [
            message.received_at
            for message, send in zip(messages, sends, strict=True)
            if send <= fastest + allowance
        ]
        report = f"max per second {maxima}, sends over the allowance {late}"

        assert max_in_any_window(on_time) <= RATE + BURST, report  # the bound
        for maximum, slow in zip(maxima, late, strict=True):
            assert maximum <= RATE + BURST + slow, report
        assert max(maxima) >= RATE + BURST - 1, report  # the runs did fill the window
        means = [(len(times) - 1) / (max(times) - min(times)) for times in arrivals]
        assert min(means) >= RATE * 0.9, means  # held to the limit, not starved
