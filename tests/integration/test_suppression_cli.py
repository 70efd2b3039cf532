"""`mailfleet suppression list|add|remove` against a real Redis."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import redis

from mailfleet.shared.settings import Settings
from mailfleet.shared.suppression import SuppressionList
from tests.integration.helpers import mailfleet_command, settings_env


def _run(settings: Settings, *args: str, **env: str) -> Any:
    return subprocess.run(
        mailfleet_command("suppression", *args),
        env={**settings_env(settings), **env},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


class TestSuppressionCli:
    def test_an_added_address_is_listed_with_its_reason(
        self, settings: Settings, redis_client: redis.Redis
    ) -> None:
        """`add` stores the bare, lower-cased address; `list --json` shows it with the reason."""
        added = _run(settings, "add", "Ann <Ann@Example.ORG>", "--reason", "complained")
        listed = _run(settings, "list", "--json")

        assert 0 == added.returncode, added.stderr
        assert "suppressed ann@example.org" == added.stdout.strip()
        [entry] = json.loads(listed.stdout)
        assert ("ann@example.org", "complained") == (entry["address"], entry["reason"])
        assert entry["at"].endswith("Z")
        suppression = SuppressionList(redis_client, settings.names)
        assert ["ann@example.org"] == [entry.address for entry in suppression.entries()]

    def test_list_prints_a_table_and_a_count(self, settings: Settings) -> None:
        """`list` without --json prints one row per address and `N suppressed addresses`."""
        for address in ("b@example.org", "a@example.org"):
            assert 0 == _run(settings, "add", address).returncode

        result = _run(settings, "list")

        assert 0 == result.returncode, result.stderr
        lines = result.stdout.strip().splitlines()
        assert lines[0].startswith("ADDRESS")
        assert ["a@example.org", "b@example.org"] == [line.split()[0] for line in lines[1:3]]
        assert "added by an operator" in lines[1]
        assert "2 suppressed addresses" == lines[-1]

    def test_remove_takes_an_address_off_the_list(
        self, settings: Settings, redis_client: redis.Redis
    ) -> None:
        """`remove` deletes the entry; removing it again exits 1 and says it was not there."""
        SuppressionList(redis_client, settings.names).add("gone@example.org", "5.1.1")

        first = _run(settings, "remove", "GONE@example.org")
        second = _run(settings, "remove", "gone@example.org")

        assert (0, "removed gone@example.org") == (first.returncode, first.stdout.strip())
        assert 1 == second.returncode
        assert "not on the suppression list" in second.stderr
        assert "0 suppressed addresses" == _run(settings, "list").stdout.strip()

    def test_an_invalid_address_is_bad_usage(self, settings: Settings) -> None:
        """`add not-an-address` exits 2 and stores nothing."""
        result = _run(settings, "add", "not-an-address")

        assert 2 == result.returncode
        assert "not-an-address" in result.stderr
        assert [] == json.loads(_run(settings, "list", "--json").stdout)

    def test_an_unreachable_redis_is_one_line_without_the_password(
        self, settings: Settings
    ) -> None:
        """With Redis down the command exits 1 with one line that does not show the secret."""
        secret = "s3cret-Redis-pw"
        result = _run(settings, "list", MAILFLEET_REDIS_URL=f"redis://:{secret}@127.0.0.1:1/0")

        assert 1 == result.returncode
        assert 1 == len(result.stderr.strip().splitlines()), result.stderr
        assert "suppression list" in result.stderr
        assert secret not in result.stderr + result.stdout
