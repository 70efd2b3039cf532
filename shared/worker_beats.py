"""Worker heartbeats: each worker says every couple of seconds whether it is ready and how
its relays' circuit breakers stand, under ``{ns}:workers:<worker>`` with a short expiry.

The worker writes its beat in the same round trip as the Redis ping it makes anyway; a
worker that stops (or loses Redis) lets its beat expire. The dashboard reads them all.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

import redis

from mailfleet.shared.names import Names
from mailfleet.shared.redis_client import redis_errors
from mailfleet.shared.redis_ha import slot_client

BEAT_SECONDS = 2.0
EXPIRE_SECONDS = 10  # a few missed beats and the worker counts as gone
_SCAN_BATCH = 500
_MAX_WORKERS = 10_000  # a bound on the scan; far beyond any fleet


def worker_name() -> str:
    """``host:pid:xxxxxx``: unique per worker process, readable for an operator."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class WorkerBeat:
    worker: str
    ready: bool
    checks: dict[str, bool] = field(default_factory=dict)
    breakers: dict[str, str] = field(default_factory=dict)  # relay name → closed/open/half_open
    at: float = 0.0

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: bytes | str) -> WorkerBeat | None:
        try:
            data: dict[str, Any] = json.loads(raw)
            return cls(
                worker=str(data["worker"]),
                ready=bool(data["ready"]),
                checks={str(k): bool(v) for k, v in data.get("checks", {}).items()},
                breakers={str(k): str(v) for k, v in data.get("breakers", {}).items()},
                at=float(data.get("at", 0.0)),
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            return None  # not a beat: someone else's key, or an older layout


def beat_pipeline(client: redis.Redis, names: Names, beat: WorkerBeat) -> Any:
    """A pipeline that pings and writes ``beat`` in one round trip (``.execute()`` it); on a
    Redis Cluster it goes to the node of the namespace's slot (a cluster will not pipeline
    a PING)."""
    key = names.worker_beat(beat.worker)
    pipeline = slot_client(client, key).pipeline(transaction=False)
    pipeline.ping()
    pipeline.set(key, beat.to_json(), ex=EXPIRE_SECONDS)
    return pipeline


def read_beats(client: redis.Redis, names: Names) -> list[WorkerBeat]:
    """Every worker beat of the namespace, sorted by worker."""
    pattern = names.worker_beat("*")
    with redis_errors("cannot read the worker heartbeats"):
        keys = []
        for key in client.scan_iter(match=pattern, count=_SCAN_BATCH):
            keys.append(key)
            if len(keys) >= _MAX_WORKERS:
                break
        values = client.mget(keys) if keys else []
    beats = [WorkerBeat.from_json(value) for value in values if value is not None]
    return sorted((beat for beat in beats if beat is not None), key=lambda beat: beat.worker)
