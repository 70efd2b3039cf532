"""Script calls of several collaborators sent to Redis together: a sender's batch reads its
recipients and takes its tokens in one round trip. On this kind of machine a blocking round
trip through redis-py costs more CPU than the scripts themselves."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis
from redis.commands.core import Script

from mailfleet.shared.redis_client import redis_errors
from mailfleet.shared.redis_ha import follow_moved, slot_client


@dataclass(frozen=True)
class ScriptCall:
    script: Script
    keys: Sequence[str]
    args: Sequence[str | int]


def run_together(client: redis.Redis, calls: Sequence[ScriptCall]) -> list[Any]:
    """Each call's answer, in order, from one pipelined round trip (not a transaction: each
    script is atomic on its own). A script Redis does not have (it restarted) is loaded and
    its call made again; the calls that ran are not repeated. On a Redis Cluster the calls
    go to the node of their keys' slot (one slot per namespace)."""
    if not calls:
        return []
    pipeline = slot_client(client, calls[0].keys[0]).pipeline(transaction=False)
    for call in calls:
        pipeline.evalsha(call.script.sha, len(call.keys), *call.keys, *call.args)
    with redis_errors("cannot reach Redis"):
        answers = pipeline.execute(raise_on_error=False)
        for index, answer in enumerate(answers):
            if isinstance(answer, redis.exceptions.NoScriptError):
                call = calls[index]
                answers[index] = call.script(keys=call.keys, args=call.args)  # loads it
            elif isinstance(answer, Exception):
                follow_moved(client, answer)
                raise answer
    return answers
