"""A batch's tokens taken in one call, on real Redis: all or none, within the same burst
and window as tokens taken one at a time."""

from __future__ import annotations

import redis

from mailfleet.shared.durations import Rate
from mailfleet.shared.job import Lane
from mailfleet.shared.round_trip import run_together
from mailfleet.shared.settings import Settings
from mailfleet.worker.limits.bucket import Bucket
from mailfleet.worker.limits.buckets import RateLimiter, TokenGrant


def _bucket(settings: Settings, rate: str, burst: int) -> Bucket:
    return Bucket(settings.names.redis_key("rate", "lease"), "lease", Rate.parse(rate), burst)


def _lease(
    client: redis.Redis, limiter: RateLimiter, buckets: list[Bucket], lane: Lane, tokens: int
) -> TokenGrant:
    """``tokens`` tokens from each of ``buckets`` as a sender's batch takes them: the take
    call run in the batch's round trip, its answer read back."""
    [raw] = run_together(client, [limiter.take_call(buckets, lane, tokens)])
    return limiter.answer(buckets, raw)


def test_several_tokens_come_at_once_while_the_burst_holds_them(
    settings: Settings, redis_client: redis.Redis
) -> None:
    limiter = RateLimiter(redis_client, settings)
    bucket = _bucket(settings, "10/s", 8)

    assert _lease(redis_client, limiter, [bucket], Lane.TRANSACTIONAL, 6).granted
    assert 6 == redis_client.llen(bucket.recent_key)  # the window counts each of them
    # Two are left of the burst: three at once is refused and takes nothing ...
    refused = _lease(redis_client, limiter, [bucket], Lane.TRANSACTIONAL, 3)
    assert not refused.granted
    assert 0 < refused.wait_seconds <= 0.2
    assert 6 == redis_client.llen(bucket.recent_key)
    # ... while the two left still come one by one, and then the bucket is spent.
    answers = limiter.try_take_many([([bucket], Lane.TRANSACTIONAL)] * 3)
    assert [True, True, False] == [answer.granted for answer in answers]


def test_bulk_leaves_its_share_of_the_burst_to_transactional_mail(
    settings: Settings, redis_client: redis.Redis
) -> None:
    limiter = RateLimiter(redis_client, settings)
    bucket = _bucket(settings, "10/s", 8)

    assert not _lease(redis_client, limiter, [bucket], Lane.BULK, 5).granted  # bulk may use 4
    assert _lease(redis_client, limiter, [bucket], Lane.BULK, 4).granted
    assert _lease(redis_client, limiter, [bucket], Lane.TRANSACTIONAL, 4).granted


def test_more_tokens_than_a_window_holds_are_never_granted(
    settings: Settings, redis_client: redis.Redis
) -> None:
    limiter = RateLimiter(redis_client, settings)
    bucket = _bucket(settings, "1/s", 3)  # the window holds 1 + 3

    assert not _lease(redis_client, limiter, [bucket], Lane.TRANSACTIONAL, 5).granted
    assert _lease(redis_client, limiter, [bucket], Lane.TRANSACTIONAL, 3).granted
