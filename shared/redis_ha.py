"""Clients of a Redis that fails over: the primary behind Sentinel, or a Redis Cluster.

Both fail closed through the errors of :mod:`mailfleet.shared.redis_client`: while the
sentinels elect a new primary, a call raises (connection refused, READONLY from the old
primary turned replica, or "no master found"), the caller holds its mail as it does when
Redis is down, and the next call after the election reaches the new primary.
"""

from __future__ import annotations

from typing import Any, cast

import redis
from redis.cluster import ClusterNode, RedisCluster
from redis.connection import ConnectionPool
from redis.sentinel import Sentinel

from mailfleet.shared.names import Names
from mailfleet.shared.redis_urls import HostsUrl


def _credentials(url: HostsUrl) -> dict[str, Any]:
    password = url.password.get_secret_value() if url.password is not None else None
    return {"username": url.username, "password": password}


def sentinel_primary(url: HostsUrl, options: dict[str, Any]) -> redis.Redis:
    """A client of the primary the sentinels name for ``url.service``; every new connection
    asks them again, so a failover is followed on the first call that fails after it."""
    timeouts = {key: options[key] for key in ("socket_timeout", "socket_connect_timeout")}
    sentinel = Sentinel(list(url.hosts), sentinel_kwargs=timeouts, **timeouts)  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
    primary = sentinel.master_for(url.service, db=url.db, **_credentials(url), **options)  # type: ignore[no-untyped-call]  # as above
    return cast(redis.Redis, primary)


def cluster_client(url: HostsUrl, options: dict[str, Any]) -> redis.Redis:
    """A Redis Cluster client found from the listed nodes. Typed as ``redis.Redis``: it
    answers the same commands, scripts and non-transactional pipelines mailfleet uses, and
    every key of a namespace shares the ``{ns}`` hash tag, so no call spans two slots."""
    options = {key: value for key, value in options.items() if key != "health_check_interval"}
    cluster = RedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in url.hosts],  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
        **_credentials(url),
        **options,
    )
    return cast(redis.Redis, cluster)


def namespace_pool(client: redis.Redis, names: Names) -> ConnectionPool:
    """The connection pool of the node that holds the namespace's keys, for writers that
    talk to a connection directly. On a cluster that is the primary of the ``{ns}`` slot: if
    the slot moves (resharding), a write there is answered MOVED, fails like a Redis that is
    down, and the next connection is taken from the slot's new primary."""
    cluster: object = client
    if isinstance(cluster, RedisCluster):
        node = cluster.get_node_from_key(names.redis_prefix)  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
        return cast(ConnectionPool, node.redis_connection.connection_pool)
    return client.connection_pool


def slot_client(client: redis.Redis, key: str) -> redis.Redis:
    """A client of the node that holds ``key``, for pipelines of script calls, which a
    cluster client refuses to pipeline: every key of a namespace shares its slot, so one
    node answers the whole pipeline. Off a cluster, ``client`` itself."""
    cluster: object = client
    if isinstance(cluster, RedisCluster):
        node = cluster.get_node_from_key(key)  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
        return cast(redis.Redis, node.redis_connection)
    return client


def follow_moved(client: redis.Redis, error: BaseException) -> None:
    """After a MOVED reply to a pipeline sent straight to a node, re-read the cluster's slot
    map so the next call goes to the slot's new primary (the call itself failed closed)."""
    cluster: object = client
    if isinstance(cluster, RedisCluster) and str(error).startswith("MOVED"):
        cluster.nodes_manager.initialize()
