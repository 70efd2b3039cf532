"""The Redis client of the producer-side ops tools, with short timeouts.

The worker has its own (``mailfleet.worker.redis_client``); the producer never imports the
worker, so the same few lines live here. redis-py's defaults could block an operator's
command for tens of seconds against a Redis that hangs.
"""

from __future__ import annotations

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from mailfleet.shared.settings import Settings

# What redis-py raises when the server is down, restarting or hung.
REDIS_DOWN: tuple[type[Exception], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
)


def make_redis(settings: Settings, timeout: float = 2.0) -> redis.Redis:
    """A client for ``MAILFLEET_REDIS_URL`` that gives up within a few seconds."""
    return redis.Redis.from_url(
        settings.redis_url.get_secret_value(),
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), retries=1),
    )
