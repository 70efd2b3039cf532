"""`mailfleet migrate-keys`: the old ``ns:...`` keys renamed to ``{ns}:...`` on a real Redis,
with their TTLs, nothing overwritten, and a worker of the new layout reading what moved."""

from __future__ import annotations

import subprocess

import redis

from mailfleet.shared.settings import Settings
from tests.integration.helpers import mailfleet_command, settings_env


def _run(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        mailfleet_command("migrate-keys", *args),
        env=settings_env(settings),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


class TestMigrateKeys:
    def test_old_keys_move_with_their_ttl(
        self, settings: Settings, redis_client: redis.Redis
    ) -> None:
        """Three old keys: --dry-run counts them and moves none; the run moves them all, the
        ledger's TTL kept, and the new layout reads them; a second run has nothing to do."""
        old = settings.names.legacy_redis_prefix
        redis_client.hset(f"{old}sent:job-1", "a@example.org", "1")
        redis_client.expire(f"{old}sent:job-1", 3600)
        redis_client.set(f"{old}stats:delivered", 41)
        redis_client.hset(f"{old}suppressed", "b@example.org", "{}")

        dry = _run(settings, "--dry-run")
        assert 0 == dry.returncode, dry.stderr
        assert "would move 3 keys" in dry.stdout
        assert redis_client.exists(f"{old}stats:delivered")

        done = _run(settings)
        assert 0 == done.returncode, done.stderr
        assert "moved 3 keys" in done.stdout
        names = settings.names
        assert redis_client.hexists(names.sent_ledger("job-1"), "a@example.org")
        assert 3000 < redis_client.ttl(names.sent_ledger("job-1")) <= 3600
        assert b"41" == redis_client.get(names.delivered_counter)
        assert redis_client.hexists(names.redis_key("suppressed"), "b@example.org")
        assert [] == list(redis_client.scan_iter(match=f"{old}*"))

        again = _run(settings)
        assert (0, "moved 0 keys") == (again.returncode, again.stdout.split(" from")[0])

    def test_a_key_whose_new_name_exists_is_left_and_named(
        self, settings: Settings, redis_client: redis.Redis
    ) -> None:
        """Both layouts hold the counter: the old one is left, named, and the exit is 1;
        the new one keeps its value; the other key moves."""
        old = settings.names.legacy_redis_prefix
        redis_client.set(f"{old}stats:delivered", 5)
        redis_client.set(settings.names.delivered_counter, 7)
        redis_client.set(f"{old}adaptive:changed", "x")

        result = _run(settings)

        assert 1 == result.returncode
        assert f"left {old}stats:delivered: its new name exists already" in result.stderr
        assert b"7" == redis_client.get(settings.names.delivered_counter)
        assert b"5" == redis_client.get(f"{old}stats:delivered")
        assert b"x" == redis_client.get(settings.names.redis_key("adaptive", "changed"))
