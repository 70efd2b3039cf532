"""Removing a whole namespace: its queues and exchanges (messages included) and its Redis
keys. For the demo, benchmarks and tests, which each run in a namespace of their own."""

from __future__ import annotations

from mailfleet.producer.connection import open_connection
from mailfleet.producer.topology import delete, topology_of
from mailfleet.shared.redis_client import make_redis, redis_errors
from mailfleet.shared.settings import Settings

_BATCH = 1000


def remove_namespace(settings: Settings) -> None:
    connection = open_connection(settings)
    try:
        delete(connection, topology_of(settings))
    finally:
        connection.release()
    client = make_redis(settings, timeout=5.0)
    try:
        with redis_errors("cannot remove the namespace's Redis keys"):
            names = settings.names
            for prefix in (names.redis_prefix, names.legacy_redis_prefix):
                batch: list[bytes] = []
                for key in client.scan_iter(match=f"{prefix}*", count=_BATCH):
                    batch.append(key)
                    if len(batch) >= _BATCH:
                        client.unlink(*batch)
                        batch = []
                if batch:
                    client.unlink(*batch)
    finally:
        client.close()
