"""Script calls of several collaborators in one round trip, on real Redis: answers in order,
and a script Redis lacks (it restarted) is loaded without running the others twice."""

from __future__ import annotations

import uuid

import pytest
import redis

from mailfleet.shared.errors import RedisUnavailable
from mailfleet.shared.round_trip import ScriptCall, run_together
from mailfleet.shared.settings import Settings


def _counter(client: redis.Redis) -> redis.commands.core.Script:
    # A text of its own, so that no other test or worker has loaded it.
    return client.register_script(
        f"-- {uuid.uuid4()}\nreturn redis.call('INCRBY', KEYS[1], ARGV[1])"
    )


def test_answers_come_in_order_and_a_missing_script_is_loaded_once(
    settings: Settings, redis_client: redis.Redis
) -> None:
    loaded, missing = _counter(redis_client), _counter(redis_client)
    redis_client.script_load(loaded.script)
    first, second = settings.names.redis_key("rt", "a"), settings.names.redis_key("rt", "b")

    answers = run_together(
        redis_client,
        [ScriptCall(loaded, [first], [5]), ScriptCall(missing, [second], [7])],
    )

    assert [5, 7] == answers
    # The loaded one ran once although the other had to be loaded and called again.
    assert b"5" == redis_client.get(first)
    assert b"7" == redis_client.get(second)
    assert [True] == redis_client.script_exists(missing.sha)


def test_a_script_error_holds_the_batch_like_an_unreachable_redis(
    settings: Settings, redis_client: redis.Redis
) -> None:
    broken = redis_client.register_script(f"-- {uuid.uuid4()}\nreturn redis.call('NOPE')")
    with pytest.raises(RedisUnavailable, match="cannot reach Redis"):
        run_together(redis_client, [ScriptCall(broken, [settings.names.redis_key("rt")], [])])
