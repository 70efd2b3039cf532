"""Capacity of the fleet-wide bucket: how many token calls per second one Redis answers, and
so at which fleet-wide send rate the global bucket becomes the bottleneck.

Run from the repository root (Redis on localhost, or MAILFLEET_REDIS_URL)::

    .venv/bin/python tests/benchmarks/bench_bucket_capacity.py --clients 1,4,8 --tokens 1,8

For each number of client processes P and tokens per call k, in a fresh namespace
(``bench-cap-<hex>``): P processes, each with its own client, call the rate-limit script on
one global bucket (a rate far above what they can take, so every call is granted and the
script does its whole work) for ``--seconds`` seconds, each call taking k tokens at once,
as a sender's batch lease does (worker/limits/admission.py: up to 64, the batch size).
Printed: script calls/s summed over the processes, and sends/s = calls/s x k, the rate at
which the one bucket (one Redis, or one shard of a cluster: a namespace's keys share a
slot) would be saturated. A worker also makes one recipients read per batch, in the same
round trip (shared/round_trip.py), so the Redis cost per email is about 1/k script calls.
The namespace's keys are removed at the end.
"""

from __future__ import annotations

import argparse
import multiprocessing
import time
import uuid

from mailfleet.shared.durations import Rate
from mailfleet.shared.job import Lane
from mailfleet.shared.redis_client import make_redis
from mailfleet.shared.round_trip import run_together
from mailfleet.shared.settings import Settings, load_settings
from mailfleet.worker.limits.buckets import RateLimiter


def _client(settings: Settings, tokens: int, seconds: float, start_at: float) -> int:
    limiter = RateLimiter(make_redis(settings), settings)
    client = make_redis(settings)
    buckets = limiter.buckets_for(_job(), ["a@example.org"])
    calls = 0
    while time.time() < start_at:
        time.sleep(0.001)
    deadline = start_at + seconds
    while time.time() < deadline:
        call = limiter.take_call(buckets, Lane.TRANSACTIONAL, tokens)
        (answer,) = run_together(client, [call])
        assert limiter.answer(buckets, answer).granted, "the bucket ran dry: raise its rate"
        calls += 1
    return calls


def _job():  # type: ignore[no-untyped-def]  # a benchmark script
    from mailfleet.shared.job import EmailJob

    return EmailJob.model_validate(
        {
            "id": "bench",
            "from": "a@example.com",
            "to": ["a@example.org"],
            "subject": "s",
            "text": "t",
        }
    )


def measure(settings: Settings, processes: int, tokens: int, seconds: float) -> float:
    start_at = time.time() + 1.0  # every process started before the clock runs
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        counts = pool.starmap(_client, [(settings, tokens, seconds, start_at)] * processes)
    return sum(counts) / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", default="1,4,8", help="client process counts")
    parser.add_argument("--tokens", default="1,8", help="tokens per call")
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    settings = load_settings(
        namespace=f"bench-cap-{uuid.uuid4().hex[:8]}",
        rate_limit=Rate.parse("100000000/s"),
        rate_burst=100_000_000,
    )
    print(
        f"Redis {settings.redis_url.get_secret_value().split('@')[-1]}, {args.seconds:.0f} s each"
    )
    print(f"{'processes':>9} {'tokens/call':>11} {'calls/s':>9} {'sends/s at saturation':>22}")
    try:
        for processes in (int(p) for p in args.clients.split(",")):
            for tokens in (int(k) for k in args.tokens.split(",")):
                rate = measure(settings, processes, tokens, args.seconds)
                print(f"{processes:>9} {tokens:>11} {rate:>9.0f} {rate * tokens:>22.0f}")
    finally:
        client = make_redis(settings)
        keys = list(client.scan_iter(match=f"{settings.names.redis_prefix}*"))
        if keys:
            client.unlink(*keys)
        client.close()


if __name__ == "__main__":
    main()
