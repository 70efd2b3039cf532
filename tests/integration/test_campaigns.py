"""`mailfleet campaign send|status` end to end: CSV in, one rendered email per recipient out,
never twice, however often the command runs or is killed."""

from __future__ import annotations

import json
import signal
import subprocess
from collections import Counter
from email.message import Message
from pathlib import Path

import redis
from kombu.connection import Connection

from mailfleet.producer.devtools.sink import SmtpSink
from mailfleet.producer.topology import queue_depths, topology_of
from mailfleet.shared.settings import Settings
from mailfleet.shared.suppression import SuppressionList
from tests.integration.campaigns import (
    campaign_args,
    people,
    put_template,
    run,
    write_recipients,
)
from tests.integration.helpers import WorkerThread, mailfleet_command, settings_env, wait_until


def _bodies(message: Message) -> dict[str, str]:
    """Each part's decoded text by its content type."""
    parts = message.get_payload() if message.is_multipart() else [message]
    assert isinstance(parts, list)
    return {part.get_content_type(): part.get_payload(decode=True).decode() for part in parts}


def _lane_depth(amqp_connection: Connection, settings: Settings) -> int:
    depths = queue_depths(amqp_connection, topology_of(settings))
    return depths[f"{settings.namespace}.bulk"][0]


class TestCampaignSend:
    def test_500_recipients_get_their_own_email_once(
        self,
        settings: Settings,
        redis_client: redis.Redis,
        smtp_server: SmtpSink,
        tmp_path: Path,
    ) -> None:
        """500 emails, each with its own name in subject and body, the HTML escaped; a
        suppressed address and a duplicate are skipped and counted; a rerun sends none."""
        put_template(redis_client, settings, "welcome")
        rows = people(500)
        rows[7]["name"] = "<script>alert(1)</script>"
        rows.append({"email": "PERSON3@example.org", "name": "Again", "code": "1"})
        rows.append({"email": "gone@example.org", "name": "Gone", "code": "2"})
        SuppressionList(redis_client, settings.names).add("gone@example.org", "5.1.1 test")
        recipients = write_recipients(tmp_path / "people.csv", rows)
        command = campaign_args("welcome", recipients, "--id", "spring")

        first = run(settings, command)

        assert 0 == first.returncode, first.stderr
        expected = "campaign spring: published 500, skipped 2 (suppressed 1, duplicate 1)"
        assert expected == first.stdout.strip()
        assert "row 502: email: PERSON3@example.org is a duplicate" in first.stderr
        assert 0 == WorkerThread(settings, burst=True).join(timeout=90)
        assert 500 == smtp_server.count
        by_rcpt = {message.rcpt_tos[0]: message.parsed() for message in smtp_server.messages}
        for n in (0, 123, 499):
            parsed = by_rcpt[f"person{n}@example.org"]
            assert f"Hello Person {n}" == parsed["Subject"]
            assert f"Person {n} <person{n}@example.org>" == parsed["To"]
            bodies = _bodies(parsed)
            assert f"Dear Person {n}, your code is {1000 + n}." == bodies["text/plain"].strip()
            assert f"Dear Person {n}," in bodies["text/html"]
        escaped = _bodies(by_rcpt["person7@example.org"])
        assert "<script>" not in escaped["text/html"]
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in escaped["text/html"]
        assert "<script>alert(1)</script>" in escaped["text/plain"]  # text is not HTML

        second = run(settings, command)

        assert 0 == second.returncode, second.stderr
        assert second.stdout.strip().startswith("campaign spring: published 0,")
        assert "500 published by an earlier run" in second.stdout
        assert 0 == WorkerThread(settings, burst=True).join(timeout=60)
        assert 500 == smtp_server.count
        report = json.loads(run(settings, _status_command("spring", "--json")).stdout)
        assert {"published": 500, "sent": 500, "pending": 0, "skipped_suppressed": 1} == {
            key: report[key] for key in ("published", "sent", "pending", "skipped_suppressed")
        }

    def test_killed_half_way_then_rerun_mails_everyone_once(
        self,
        settings: Settings,
        redis_client: redis.Redis,
        smtp_server: SmtpSink,
        tmp_path: Path,
    ) -> None:
        """SIGKILL while publishing, run again: every recipient gets exactly one email."""
        put_template(redis_client, settings, "welcome")
        recipients = write_recipients(tmp_path / "people.csv", people(500))
        command = campaign_args("welcome", recipients, "--id", "killed", "--batch", "5")
        published = settings.names.campaign_published("killed")
        worker = WorkerThread(settings)  # sending while the campaign is being published

        process = subprocess.Popen(
            command,
            env=settings_env(settings),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            assert wait_until(
                lambda: int(redis_client.scard(published)) >= 100, timeout=60, interval=0.002
            )
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)
        half = int(redis_client.scard(published))
        assert -signal.SIGKILL == process.returncode
        assert 100 <= half < 500

        rerun = run(settings, command)

        assert 0 == rerun.returncode, rerun.stderr
        assert f"{half} published by an earlier run" in rerun.stdout
        assert smtp_server.wait_for(500, timeout=90)
        worker.stop()
        received = Counter(rcpt for message in smtp_server.messages for rcpt in message.rcpt_tos)
        assert {f"person{n}@example.org" for n in range(500)} == set(received)
        assert {1} == set(received.values())

    def test_a_missing_variable_is_refused_before_anything_is_published(
        self,
        settings: Settings,
        redis_client: redis.Redis,
        amqp_connection: Connection,
        tmp_path: Path,
    ) -> None:
        """Exit 2, `row N: variables: ... 'code' is undefined` per bad row, nothing published."""
        put_template(redis_client, settings, "welcome")
        rows = people(20)
        for row in rows:
            row.pop("code")
        rows[0]["email"] = "not an address"
        recipients = write_recipients(tmp_path / "people.csv", rows)

        result = run(settings, campaign_args("welcome", recipients))

        assert 2 == result.returncode
        lines = result.stderr.splitlines()
        assert lines[0].startswith("row 2: email: ")
        assert "row 3: variables: text: missing variable: 'code' is undefined" == lines[1]
        assert "nothing published: 20 problem(s)" == lines[-1]
        assert 0 == _lane_depth(amqp_connection, settings)

    def test_status_of_an_unknown_campaign_says_so(self, settings: Settings) -> None:
        """Exit 1 and one line naming the campaign."""
        result = run(settings, _status_command("never"))

        assert 1 == result.returncode
        assert "no campaign never" in result.stderr

    def test_a_template_that_does_not_compile_is_not_stored(
        self, settings: Settings, tmp_path: Path
    ) -> None:
        """`template put` refuses a syntax error with its line, and stores nothing."""
        (tmp_path / "subject.txt").write_text("Hi\n")
        (tmp_path / "text.txt").write_text("line one\n{% if %}\n")

        result = run(settings, _command("template", "put", "broken", str(tmp_path)))
        listing = run(settings, _command("template", "list"))

        assert 2 == result.returncode
        assert "text: syntax error on line 2" in result.stderr
        assert "" == listing.stdout


def _command(*args: str) -> list[str]:
    return mailfleet_command(*args)


def _status_command(campaign: str, *extra: str) -> list[str]:
    return _command("campaign", "status", campaign, *extra)
