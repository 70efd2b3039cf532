"""Helpers for integration tests: jobs, waiting on conditions, worker processes, ledgers."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from kombu.connection import Connection
from pydantic import BeforeValidator, SecretStr

from mailfleet.producer.devtools.sink import SmtpSink
from mailfleet.shared import names as headers
from mailfleet.shared.durations import Rate
from mailfleet.shared.events import EVENT_TYPE, Event
from mailfleet.shared.job import EmailJob
from mailfleet.shared.limit_spec import Limit
from mailfleet.shared.relays import Relay
from mailfleet.shared.settings import Settings
from mailfleet.worker.runner import Worker


def make_job(number: int, **fields: Any) -> EmailJob:
    data: dict[str, Any] = {
        "id": f"job-{number}",
        "from": "Sender <sender@example.com>",
        "to": [f"rcpt{number}@example.org"],
        "subject": f"Test {number}",
        "text": f"Body of test email {number}.",
    }
    data.update(fields)
    return EmailJob.model_validate(data)


def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` passes; return whether it held."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


def _relay_url(relay: Relay) -> str:
    scheme = "smtps" if relay.implicit_tls else "smtp"
    password = f":{relay.password.get_secret_value()}" if relay.password else ""
    userinfo = f"{relay.username}{password}@" if relay.username else ""
    options = {"weight": str(relay.weight)}
    if relay.starttls is not None:
        options["starttls"] = str(relay.starttls).lower()
    if relay.rate is not None or relay.budgets:
        options["rate"] = str(Limit(relay.rate, relay.budgets))
    if relay.warmup is not None:
        options["warmup"] = str(relay.warmup)
        options["since"] = relay.warmup.since.isoformat()
    if relay.source is not None:
        options["source"] = relay.source
    query = "?" + "&".join(f"{key}={value}" for key, value in options.items())
    return f"{scheme}://{userinfo}{relay.host}:{relay.port}{query}"


def _env_value(value: Any) -> str | None:  # noqa: PLR0911 (one return per setting type)
    """A setting's value spelled as the environment variable ``load_settings`` reads."""
    if value is None:
        return None
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, Rate):
        return str(value)
    if isinstance(value, list) and value and isinstance(value[0], Relay):
        return ",".join(_relay_url(relay) for relay in value)
    if isinstance(value, list):
        return ",".join(f"{round(item * 1000)}ms" for item in value)
    if isinstance(value, dict) and any(isinstance(item, list) for item in value.values()):
        return json.dumps(  # e.g. the DKIM keys: a list of models per domain
            {
                str(key): [entry.model_dump(mode="json") for entry in item]
                for key, item in value.items()
            }
        )
    if isinstance(value, dict):
        return json.dumps({str(key): str(item) for key, item in value.items()})
    if isinstance(value, float):
        return f"{round(value * 1000)}ms"
    return str(value)


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that makes a ``mailfleet`` subprocess use exactly ``settings``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("MAILFLEET_")}
    for name, info in Settings.model_fields.items():
        # A duration is a float read through a parser; any other float is written as is.
        plain = not any(isinstance(item, BeforeValidator) for item in info.metadata)
        value = getattr(settings, name)
        value = str(value) if plain and isinstance(value, float) else _env_value(value)
        if value is not None:
            env[f"MAILFLEET_{name.upper()}"] = value
    env["MAILFLEET_LOG_FORMAT"] = "json"
    return env


def mailfleet_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "mailfleet.shared.cli", *args]


class WorkerProcess:
    """``mailfleet worker`` as a child process, to kill or signal like an orchestrator would.

    It leads a process group of its own, so that ``stop()`` also ends the children of
    ``--processes N`` at once instead of leaving them to drain after their parent is gone."""

    def __init__(self, settings: Settings, *args: str) -> None:
        # A file, not a pipe: a pipe nobody reads fills up and blocks the worker. Closed in stop().
        self._log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115
        # The worker shares this file's offset: appending, its writes land at the end even
        # while log() seeks to read (without it, a write during a read overwrites the start).
        flags = fcntl.fcntl(self._log.fileno(), fcntl.F_GETFL)
        fcntl.fcntl(self._log.fileno(), fcntl.F_SETFL, flags | os.O_APPEND)
        self.process = subprocess.Popen(
            mailfleet_command("worker", *args),
            env=settings_env(settings),
            stdout=subprocess.DEVNULL,
            stderr=self._log,
            text=True,
            process_group=0,
        )
        _running.append(self)

    def log(self) -> str:
        self._log.seek(0)
        return self._log.read()

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def terminate(self, timeout: float) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def wait(self, timeout: float) -> int:
        return self.process.wait(timeout=timeout)

    def stop(self) -> None:
        """SIGKILL the whole group (the parent may have exited and left children); idempotent."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        self._log.close()


class WorkerThread:
    """An in-process worker on a thread (tests that need no signals); ``stop()`` joins it."""

    def __init__(self, settings: Settings, *, burst: bool = False) -> None:
        self.worker = Worker(settings, burst=burst)
        self.exit_code: int | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="test-worker", daemon=True)
        self._thread.start()
        _running.append(self)

    def _run(self) -> None:
        try:
            self.exit_code = self.worker.run()
        except BaseException as exc:  # surfaced by join()
            self.error = exc

    def join(self, timeout: float) -> int:
        self._thread.join(timeout)
        if self._thread.is_alive():
            self.worker.stop()
            self._thread.join(10)
            raise AssertionError(f"worker did not finish within {timeout}s")
        if self.error is not None:
            raise self.error
        assert self.exit_code is not None
        return self.exit_code

    def stop(self) -> int:
        self.worker.stop()
        return self.join(30)

    def shut_down(self) -> None:
        """Stop without raising what the worker raised (a test's teardown, not its check)."""
        self.worker.stop()
        self._thread.join(30)


# Workers started during the current test, whether or not the test got to stop them.
_running: list[WorkerProcess | WorkerThread] = []


def stop_workers() -> None:
    """Stop every worker the test started. Run before its namespace is removed: a worker
    still consuming would declare the namespace again when its queues disappear."""
    while _running:
        worker = _running.pop()
        if isinstance(worker, WorkerProcess):
            worker.stop()
        else:
            worker.shut_down()


@dataclass(frozen=True)
class DeadLetter:
    job_id: str
    reason: str
    error: str
    headers: dict[str, Any]
    body: bytes


def drain_dead_letters(connection: Connection, settings: Settings) -> list[DeadLetter]:
    """Take every message from the dead-letter queue (acking them) and return them."""
    channel = connection.channel()
    found = []
    try:
        while (message := channel.basic_get(settings.names.dead_queue)) is not None:
            props = message.properties
            message_headers = dict(props.get("application_headers") or {})
            found.append(
                DeadLetter(
                    job_id=str(props.get("message_id", "")),
                    reason=str(message_headers.get(headers.REASON, "")),
                    error=str(message_headers.get(headers.ERROR, "")),
                    headers=message_headers,
                    body=bytes(message.body),
                )
            )
            channel.basic_ack(message.delivery_tag)
    finally:
        channel.close()
    return found


@dataclass
class DeliveryLedger:
    """What was confirmed, what the relay accepted, what was dead-lettered (Jepsen style)."""

    confirmed: set[str] = field(default_factory=set)
    accepted: Counter[str] = field(default_factory=Counter)
    dead: dict[str, str] = field(default_factory=dict)

    def record_relay(self, sink: SmtpSink) -> None:
        self.accepted = Counter(m.job_id for m in sink.messages if m.job_id)

    def record_dead(self, letters: Iterable[DeadLetter]) -> None:
        self.dead.update((letter.job_id, letter.reason) for letter in letters)

    @property
    def lost(self) -> set[str]:
        return self.confirmed - set(self.accepted) - set(self.dead)

    @property
    def duplicates(self) -> dict[str, int]:
        return {job_id: count for job_id, count in self.accepted.items() if count > 1}


def http_get(port: int, path: str) -> tuple[int, str]:
    """GET ``path`` on a local port: (status, body), or (0, why) while nothing listens."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except urllib.error.URLError as error:  # not listening (yet)
        return 0, str(error)


def take_events(connection: Connection, queue: str) -> list[tuple[str, Event]]:
    """Every event in ``queue`` now, acked, with its routing key; each checked against its
    AMQP properties."""
    channel = connection.channel()
    found = []
    try:
        while (message := channel.basic_get(queue)) is not None:
            assert EVENT_TYPE == message.properties.get("type")
            event = Event.from_wire(bytes(message.body))
            assert event.event_id == message.properties.get("message_id")
            assert 2 == message.properties.get("delivery_mode")
            found.append((message.delivery_info["routing_key"], event))
            channel.basic_ack(message.delivery_tag)
    finally:
        channel.close()
    return found
