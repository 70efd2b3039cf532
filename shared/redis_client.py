"""The Redis client of both sides, with short timeouts: redis-py's defaults can block a
caller for tens of seconds against a Redis that hangs."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from mailfleet.shared.errors import RedisUnavailable
from mailfleet.shared.redis_ha import cluster_client, sentinel_primary
from mailfleet.shared.redis_urls import CLUSTER_SCHEME, SENTINEL_SCHEME, parse_hosts_url
from mailfleet.shared.settings import Settings

# What redis-py raises when the server is down, restarting or hung.
REDIS_DOWN: tuple[type[Exception], ...] = (
    # Down, hung or restarting, but also refusing writes (READONLY after a failover, OOM
    # under noeviction): for a sender all of them mean "cannot rely on Redis: hold, don't
    # send", never an error that kills the thread and redelivers a sent job.
    redis.exceptions.RedisError,
)


@contextlib.contextmanager
def redis_errors(what: str) -> Iterator[None]:
    """Run Redis calls; any of :data:`REDIS_DOWN` raises :class:`RedisUnavailable` instead,
    as ``what: <redis-py's error>`` (e.g. ``cannot read the sent ledger: Timeout ...``)."""
    try:
        yield
    except REDIS_DOWN as exc:
        raise RedisUnavailable(f"{what}: {exc}") from exc


def make_redis(settings: Settings, timeout: float = 2.0) -> redis.Redis:
    """A client that gives up within about ``timeout`` seconds instead of redis-py's defaults:
    of the one Redis, of the primary the sentinels name, or of a Redis Cluster
    (``MAILFLEET_REDIS_URL``'s forms, shared/redis_urls.py)."""
    url = settings.redis_url.get_secret_value()
    options: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "retry": Retry(ExponentialBackoff(cap=0.2, base=0.02), retries=1),
        "health_check_interval": 30,
    }
    if url.startswith(f"{SENTINEL_SCHEME}:"):
        return sentinel_primary(parse_hosts_url(url), options)
    if url.startswith(f"{CLUSTER_SCHEME}:"):
        return cluster_client(parse_hosts_url(url), options)
    return redis.Redis.from_url(url, **options)
