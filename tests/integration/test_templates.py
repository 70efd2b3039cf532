"""Templated jobs in the worker: rendered from a pinned version, dead-lettered (never sent)
when they do not render, sandbox escapes included; and send windows that open later."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from kombu.connection import Connection

from mailfleet.producer.devtools.sink import SmtpSink
from mailfleet.producer.publisher import Producer
from mailfleet.shared.job import EmailJob
from mailfleet.shared.settings import Settings
from mailfleet.shared.template_ref import TemplateSource
from tests.integration.campaigns import put_template
from tests.integration.helpers import (
    WorkerThread,
    drain_dead_letters,
    mailfleet_command,
    settings_env,
)


def _templated(number: int, template: dict[str, Any], **variables: Any) -> EmailJob:
    return EmailJob.model_validate(
        {
            "id": f"tpl-{number}",
            "from": "sender@example.com",
            "to": [f"rcpt{number}@example.org"],
            "template": template,
            "variables": variables,
        }
    )


def _inline(text: str) -> dict[str, Any]:
    return {"inline": {"subject": "Hi", "text": text}}


class TestTemplatedJobs:
    def test_a_job_renders_the_version_pinned_when_it_was_published(
        self,
        settings: Settings,
        producer: Producer,
        redis_client: redis.Redis,
        smtp_server: SmtpSink,
    ) -> None:
        """Put v1, publish naming no version, put v2: the email is v1's."""
        put_template(
            redis_client, settings, "news", TemplateSource(subject="v1 {{ n }}", text="one")
        )
        producer.publish(_templated(1, {"name": "news"}, n=7))
        v2 = TemplateSource(subject="v2 {{ n }}", text="two")
        assert 2 == put_template(redis_client, settings, "news", v2)

        assert 0 == WorkerThread(settings, burst=True).join(timeout=30)

        [message] = smtp_server.messages
        assert "v1 7" == message.parsed()["Subject"]
        assert "one" == message.parsed().get_payload(decode=True).decode().strip()

    def test_a_missing_variable_dead_letters_the_job_naming_it(
        self,
        settings: Settings,
        producer: Producer,
        amqp_connection: Connection,
        smtp_server: SmtpSink,
    ) -> None:
        """Reason invalid, the error names the variable, and nothing reaches the relay."""
        producer.publish(_templated(1, _inline("Dear {{ first_name }}"), name="Ann"))

        assert 0 == WorkerThread(settings, burst=True).join(timeout=30)

        [letter] = drain_dead_letters(amqp_connection, settings)
        assert "invalid" == letter.reason
        assert "'first_name' is undefined" in letter.error
        assert 0 == smtp_server.count

    @pytest.mark.parametrize(
        "escape",
        [
            "{{ ''.__class__.__mro__ }}",
            "{{ '{0.__class__.__mro__}'|attr('format')(1) }}",
            "{{ cycler.__init__.__globals__.os }}",
        ],
    )
    def test_a_known_sandbox_escape_is_dead_lettered_not_sent(
        self,
        settings: Settings,
        producer: Producer,
        amqp_connection: Connection,
        smtp_server: SmtpSink,
        escape: str,
    ) -> None:
        """The sandbox refuses it (a security error), the job is dead-lettered as invalid."""
        producer.publish(_templated(1, _inline(f"x {escape} y")))

        assert 0 == WorkerThread(settings, burst=True).join(timeout=30)

        [letter] = drain_dead_letters(amqp_connection, settings)
        assert "invalid" == letter.reason
        assert "unsafe template code refused by the sandbox" in letter.error
        assert 0 == smtp_server.count

    def test_an_unknown_template_version_is_refused_at_publish(
        self, settings: Settings, producer: Producer, redis_client: redis.Redis
    ) -> None:
        """Naming a version that is not stored raises before anything is published."""
        put_template(redis_client, settings, "news", TemplateSource(subject="s", text="t"))

        with pytest.raises(Exception, match="no such template version"):
            producer.publish(_templated(1, {"name": "news", "version": 2}))


class TestSendWindows:
    def test_a_job_outside_its_window_waits_and_goes_out_when_it_opens(
        self, settings: Settings, producer: Producer, smtp_server: SmtpSink
    ) -> None:
        """A window opening 3 s ahead: nothing before, the email after, no attempt used."""
        opens = (datetime.now(UTC) + timedelta(seconds=3)).replace(microsecond=0)
        closes = min(opens + timedelta(hours=1), opens.replace(hour=23, minute=59, second=59))
        window = {
            "days": opens.strftime("%a").lower(),
            "hours": f"{opens:%H:%M:%S}-{closes:%H:%M:%S}",
            "tz": "UTC",
        }
        job = EmailJob.model_validate(
            {
                "id": "windowed",
                "from": "sender@example.com",
                "to": ["rcpt@example.org"],
                "subject": "In the window",
                "text": "Now.",
                "window": window,
            }
        )
        producer.publish(job)

        # max_attempts is 3 and the tiers are 0.3 s and 0.6 s: waiting 3 s takes many
        # deferrals, each of which would exhaust the job if it used an attempt.
        assert 0 == WorkerThread(settings, burst=True).join(timeout=60)

        [message] = smtp_server.messages
        assert message.received_at >= opens.timestamp()
        assert "In the window" == message.parsed()["Subject"]

    def test_explain_shows_the_window_and_when_it_opens(
        self, settings: Settings, tmp_path: Path
    ) -> None:
        """`mailfleet explain` names the window and the next time it opens."""
        day = datetime.now(UTC) + timedelta(days=2)  # never open today
        job = {
            "from": "a@example.com",
            "to": ["b@example.org"],
            "subject": "s",
            "text": "t",
            "window": {"days": f"{day:%a}".lower(), "hours": "09:00-10:00", "tz": "Europe/Berlin"},
        }
        path = tmp_path / "job.json"
        path.write_text(json.dumps(job))

        result = subprocess.run(
            mailfleet_command("explain", str(path), "--json"),
            env=settings_env(settings),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

        assert 0 == result.returncode, result.stderr
        report = json.loads(result.stdout)
        assert f"{day:%a} 09:00-10:00 Europe/Berlin".lower() == report["window"].lower()
        opens = datetime.fromisoformat(report["window_opens_at"])
        assert day.weekday() == opens.weekday()
        assert opens.hour in (7, 8)  # 09:00 in Berlin: 08:00 UTC in winter, 07:00 in summer
        assert report["wait_s"] == report["window_wait_s"] > 0
