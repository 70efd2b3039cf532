"""Helpers for the webhook tests: a real local HTTP endpoint with scripted answers that
records (and verifies) every request, events published to ``{ns}.events``, and
``mailfleet webhooks`` on a thread or as a child process."""

from __future__ import annotations

import base64
import fcntl
import json
import os
import signal
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

import pika
from standardwebhooks import Webhook

from mailfleet.producer.connection import open_connection
from mailfleet.producer.topology import declare
from mailfleet.shared.events import EVENT_TYPE, Event, EventKind, event_id, utc_ms
from mailfleet.shared.job import Lane
from mailfleet.shared.settings import Settings
from mailfleet.shared.webhook_topology import webhook_topology_of
from mailfleet.shared.webhooks import parse_webhooks
from mailfleet.worker.webhooks.runner import WebhookService
from tests.integration.helpers import mailfleet_command, settings_env

# (request number from 1, event id, body) -> (status, response body)
Script = Callable[[int, str, bytes], tuple[int, bytes]]


def new_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


def always(status: int, body: bytes = b"") -> Script:
    return lambda number, event, payload: (status, body)


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes
    status: int  # what the endpoint answered
    at: float  # time.monotonic() when the answer went out

    @property
    def webhook_id(self) -> str:
        return self.headers.get("webhook-id", "")

    @property
    def event_id(self) -> str:
        return str(json.loads(self.body)["event_id"])


@dataclass
class Endpoint:
    """An HTTP server on 127.0.0.1 in a thread; ``script`` decides each answer and may be
    swapped while it runs; ``delay`` seconds pass before each answer."""

    secrets: list[str]
    script: Script = field(default_factory=lambda: always(200))
    delay: float = 0.0
    events: list[str] = field(default_factory=lambda: ["*"])
    name: str | None = None
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with endpoint.lock:
                    number = len(endpoint.received) + 1
                    status, answer = endpoint.script(number, self.headers["webhook-id"], body)
                if endpoint.delay:
                    time.sleep(endpoint.delay)
                self.send_response(status)
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)
                with endpoint.lock:
                    endpoint.received.append(
                        Received(
                            {k.lower(): v for k, v in self.headers.items()},
                            body,
                            status,
                            time.monotonic(),
                        )
                    )

            def log_message(self, format: str, *args: object) -> None:
                """Quiet."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hooks"

    def config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"url": self.url, "events": self.events, "secret": self.secrets}
        if self.name:
            config["name"] = self.name
        return config

    def snapshot(self) -> list[Received]:
        with self.lock:
            return list(self.received)

    def delivered(self) -> Counter[str]:
        """Event id → how many 2xx answers it got."""
        return Counter(r.event_id for r in self.snapshot() if 200 <= r.status < 300)

    def verify_all(self) -> None:
        """Every request carries a valid signature for every secret, and webhook-id = event id."""
        for request in self.snapshot():
            assert request.webhook_id == request.event_id
            signatures = request.headers["webhook-signature"].split(" ")
            assert len(self.secrets) == len(signatures)
            for secret in self.secrets:
                Webhook(secret).verify(request.body, request.headers)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def make_event(number: int, kind: EventKind = EventKind.DELIVERED, lane: Lane = Lane.BULK) -> Event:
    job, recipient = f"job-{number}", f"rcpt{number}@example.org"
    return Event(
        event=kind,
        event_id=event_id(job, recipient, 1, kind),
        job_id=job,
        recipient=recipient,
        lane=lane,
        attempt=1,
        occurred_at=utc_ms(),
        seq=1,
    )


def publish_events(settings: Settings, events: Iterable[Event]) -> list[str]:
    """Publish to ``{ns}.events`` as the worker does (persistent, confirmed, mandatory)."""
    connection = pika.BlockingConnection(pika.URLParameters(settings.amqp_url.get_secret_value()))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        ids = []
        for event in events:
            channel.basic_publish(
                settings.names.events_exchange,
                event.routing_key,
                event.to_wire(),
                pika.BasicProperties(
                    content_type="application/json",
                    type=EVENT_TYPE,
                    message_id=event.event_id,
                    delivery_mode=2,
                ),
                mandatory=True,
            )
            ids.append(event.event_id)
        return ids
    finally:
        connection.close()


class WebhooksThread:
    """``WebhookService`` on a thread; ``stop()`` joins it."""

    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        self.service = WebhookService(settings, **kwargs)
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="test-webhooks", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self.service.run()
        except BaseException as exc:
            self.error = exc

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self.service.stop()
        self._thread.join(30)
        assert not self._thread.is_alive(), "the webhooks service did not stop"
        if self.error is not None:
            raise self.error


def webhooks_env(settings: Settings, endpoints: list[dict[str, Any]]) -> dict[str, str]:
    env = settings_env(settings.model_copy(update={"webhooks": []}))
    env["MAILFLEET_WEBHOOKS"] = json.dumps(endpoints)
    return env


class WebhooksProcess:
    """``mailfleet webhooks`` as a child process, its stderr kept in a file."""

    def __init__(self, settings: Settings, endpoints: list[dict[str, Any]], **env: str) -> None:
        self._log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (closed in stop())
        flags = fcntl.fcntl(self._log.fileno(), fcntl.F_GETFL)
        fcntl.fcntl(self._log.fileno(), fcntl.F_SETFL, flags | os.O_APPEND)
        self.process = subprocess.Popen(
            mailfleet_command("webhooks"),
            env={**webhooks_env(settings, endpoints), **env},
            stdout=self._log,
            stderr=self._log,
            text=True,
        )

    def log(self) -> str:
        self._log.seek(0)
        return self._log.read()

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def terminate(self, timeout: float = 30) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self._log.close()


class WebhookNamespace:
    """The endpoints of one test and the topology declared for them; ``close()`` stops the
    endpoints and deletes every queue and exchange declared, whatever the test did."""

    def __init__(self, base: Settings) -> None:
        self.base = base
        self.endpoints: list[Endpoint] = []
        self._declared: list[Settings] = []

    def endpoint(self, secrets: int = 1, **options: Any) -> Endpoint:
        endpoint = Endpoint([new_secret() for _ in range(secrets)], **options)
        self.endpoints.append(endpoint)
        return endpoint

    def configs(self) -> list[dict[str, Any]]:
        return [endpoint.config() for endpoint in self.endpoints]

    def settings(self, **overrides: Any) -> Settings:
        """Settings with every endpoint so far; their topology is declared now, so events
        published before the service starts wait in the endpoints' queues."""
        settings = self.base.model_copy(
            update={"webhooks": parse_webhooks(self.configs()), **overrides}
        )
        connection = open_connection(settings)
        try:
            self._declared.append(settings)  # before declaring: a half-declared one goes too
            declare(connection, webhook_topology_of(settings))
        finally:
            connection.release()
        return settings

    def close(self) -> None:
        for endpoint in self.endpoints:
            endpoint.close()
        if not self._declared:
            return
        connection = open_connection(self.base)
        try:
            for settings in self._declared:
                everything = settings.model_copy(update={"events_queue": True})
                channel = connection.channel()
                try:
                    for queue in webhook_topology_of(everything).queues:
                        channel.queue_delete(queue.name)
                    for exchange in webhook_topology_of(everything).exchanges:
                        channel.exchange_delete(exchange.name)
                finally:
                    channel.close()
        finally:
            connection.release()


def queue_depth(settings: Settings, queue: str) -> int:
    connection = open_connection(settings)
    try:
        channel = connection.channel()
        try:
            _, messages, _ = channel.queue_declare(queue, passive=True)
            return int(messages)
        finally:
            channel.close()
    finally:
        connection.release()
