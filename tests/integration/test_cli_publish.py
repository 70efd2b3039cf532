"""`mailfleet publish` validates every line first: all published, or none."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from kombu.connection import Connection

from mailfleet.producer.topology import queue_depths, topology_of
from mailfleet.shared.settings import Settings
from tests.integration.helpers import mailfleet_command, settings_env, wait_until

GOOD = {"from": "a@example.com", "to": ["b@example.org"], "subject": "Hi", "text": "Hello"}


def _lane_depth(connection: Connection, settings: Settings) -> int:
    depths = queue_depths(connection, topology_of(settings))
    return depths[f"{settings.namespace}.transactional"][0]


def _publish(settings: Settings, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        mailfleet_command("publish", str(path)),
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


class TestCliPublish:
    def test_a_bad_line_refuses_the_whole_file(
        self, settings: Settings, amqp_connection: Connection, tmp_path: Path
    ) -> None:
        """Exit 2, one `line N: field: problem` per problem, and nothing published."""
        lines = [
            json.dumps(GOOD),
            json.dumps({**GOOD, "to": ["not-an-address"]}),
            "",
            "{broken json",
            json.dumps({**GOOD, "subject": "a\r\nBcc: victim@example.com"}),
        ]
        jobs = tmp_path / "jobs.jsonl"
        jobs.write_text("\n".join(lines) + "\n")

        result = _publish(settings, jobs)

        assert 2 == result.returncode
        assert "line 2: to.0:" in result.stderr
        assert "line 4: job: not valid JSON" in result.stderr
        assert "line 5: subject:" in result.stderr
        assert "line 1" not in result.stderr
        assert 0 == _lane_depth(amqp_connection, settings)

    def test_a_good_file_is_published_and_confirmed(
        self, settings: Settings, amqp_connection: Connection, tmp_path: Path
    ) -> None:
        """Exit 0, `published N`, and N messages in the lane queue."""
        jobs = tmp_path / "jobs.jsonl"
        jobs.write_text("\n".join(json.dumps({**GOOD, "id": f"j{n}"}) for n in range(25)))

        result = _publish(settings, jobs)

        assert 0 == result.returncode, result.stderr
        assert "published 25" == result.stdout.strip()
        assert wait_until(lambda: _lane_depth(amqp_connection, settings) == 25, timeout=10)

    def test_a_bad_setting_stops_with_one_line_naming_it(
        self, settings: Settings, tmp_path: Path
    ) -> None:
        """A bad MAILFLEET_* value exits 2 with the variable's name and no traceback."""
        jobs = tmp_path / "jobs.jsonl"
        jobs.write_text(json.dumps(GOOD))
        env = {**settings_env(settings), "MAILFLEET_PREFETCH": "lots"}

        result = subprocess.run(
            mailfleet_command("publish", str(jobs)),
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

        assert 2 == result.returncode
        assert 1 == len(result.stderr.strip().splitlines())
        assert "MAILFLEET_PREFETCH" in result.stderr
