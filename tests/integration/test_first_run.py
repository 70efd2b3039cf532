"""A first run with nothing installed by hand: `mailfleet demo --own-servers` brings up
RabbitMQ and Redis of its own and removes them, stopping nothing shared."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest
from pydantic import SecretStr

from mailfleet.producer.devtools import demo
from mailfleet.shared.settings import Settings
from tests.integration.helpers import mailfleet_command


def _clean_env() -> dict[str, str]:
    """No MAILFLEET_* setting: the URLs are the defaults, as on a first run."""
    return {key: value for key, value in os.environ.items() if not key.startswith("MAILFLEET_")}


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True
    except OSError:
        return False


def _server_dirs() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("mailfleet-servers-*")}


class TestDemoOwnServers:
    def test_the_demo_runs_on_throwaway_servers_and_removes_them(self) -> None:
        shared_before = (_answers(5672), _answers(6379))
        dirs_before = _server_dirs()
        result = subprocess.run(
            [*mailfleet_command("demo", "--own-servers", "--emails", "60", "--workers", "1")],
            env=_clean_env(),
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
        assert 0 == result.returncode, result.stdout + result.stderr
        own = re.search(
            r"RabbitMQ at amqp://guest:\*\*\*@127\.0\.0\.1:(\d+)/%2F and Redis at "
            r"redis://127\.0\.0\.1:(\d+)/0, of its own \(local binaries\)",
            result.stdout,
        )
        assert own is not None, result.stdout
        assert "delivered 60" in result.stdout
        assert "missing 0, extra 0" in result.stdout
        amqp_port, redis_port = int(own.group(1)), int(own.group(2))
        assert {amqp_port, redis_port}.isdisjoint({5672, 6379})
        assert not _answers(amqp_port)
        assert not _answers(redis_port)
        assert dirs_before == _server_dirs()  # and its directory removed
        assert shared_before == (_answers(5672), _answers(6379))  # nothing shared stopped

    def test_a_url_the_user_set_that_does_not_answer_is_an_error_naming_it(self) -> None:
        env = {**_clean_env(), "MAILFLEET_AMQP_URL": "amqp://ann:secret@127.0.0.1:1/%2F"}
        result = subprocess.run(
            mailfleet_command("demo", "--emails", "1"),
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert 1 == result.returncode
        assert "amqp://ann:***@127.0.0.1:1/%2F" in result.stderr
        assert "MAILFLEET_AMQP_URL" in result.stderr
        assert "secret" not in result.stderr
        assert "of its own" not in result.stdout


class TestDemoDefaults:
    def test_default_urls_that_do_not_answer_bring_up_servers_of_its_own(
        self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """The URLs left at their defaults, and nothing answering there (stood in for: the
        shared servers here do answer, and are not to be stopped): the demo runs anyway."""
        for name in list(os.environ):
            if name.startswith("MAILFLEET_"):
                monkeypatch.delenv(name)
        settings = Settings()
        assert not {"amqp_url", "redis_url"} & settings.model_fields_set
        monkeypatch.setattr(demo, "_check_services", lambda _: "cannot reach RabbitMQ at …")
        assert 0 == demo.run(settings, emails=20, workers=1)
        out = capsys.readouterr().out
        assert "nothing answers at the default URLs; starting throwaway servers" in out
        assert "of its own (local binaries)" in out
        assert "delivered 20" in out

    def test_a_url_the_user_set_never_brings_up_servers(
        self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        settings = Settings(amqp_url=SecretStr("amqp://guest:guest@127.0.0.1:1/%2F"))
        monkeypatch.setattr(demo, "_check_services", lambda _: "cannot reach RabbitMQ at X")
        assert 1 == demo.run(settings, emails=1, workers=1)
        captured = capsys.readouterr()
        assert "mailfleet demo: cannot reach RabbitMQ at X" in captured.err
        assert "throwaway" not in captured.out
