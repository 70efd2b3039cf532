"""The worker's HTTP endpoints on ``MAILFLEET_METRICS_PORT``: ``/metrics`` (Prometheus),
``/healthz`` (the process is alive) and ``/readyz`` (broker and Redis connected, consuming).

``HttpEndpoint`` is the listening socket and its thread; ``PlainHandler`` the quiet request
handler both this server and the process group's (``group_health.py``) build on."""

from __future__ import annotations

import errno
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from mailfleet.shared.errors import ConfigError

ReadinessProbe = Callable[[], dict[str, bool]]
PUBLIC_HOST = "0.0.0.0"  # noqa: S104 (probes and scrapes come from outside the pod)


class PlainHandler(BaseHTTPRequestHandler):
    """Replies in one call, never writes to stderr (scrapes every few seconds would flood
    the log, and a process group forks its children while these threads run)."""

    def _reply(self, status: int, body: bytes, content_type: str = "text/plain") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Stay quiet."""


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that hung up mid-reply is not worth a traceback on stderr."""


class HttpEndpoint:
    """An HTTP server on ``host:port`` (port 0: any free one) served from a daemon thread.

    A port that cannot be had is a ``ConfigError`` naming ``MAILFLEET_METRICS_PORT``, the
    setting every public endpoint of the worker listens on."""

    def __init__(self, port: int, handler: type[BaseHTTPRequestHandler], host: str) -> None:
        try:
            self._server = _QuietServer((host, port), handler)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                why = (
                    "is already in use (MAILFLEET_METRICS_PORT): another process listens on it;"
                    " give each worker on a host its own port, use --processes N, or 0 for none"
                )
            else:
                why = f"cannot be opened (MAILFLEET_METRICS_PORT): {exc.strerror}"
            raise ConfigError(f"metrics port {port} {why}") from exc
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="health", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()

    def close_inherited(self) -> None:
        """In a forked child: drop the copy of the listening socket, leave the parent's be."""
        self._server.socket.close()


class HealthServer(HttpEndpoint):
    def __init__(
        self,
        port: int,
        registry: CollectorRegistry,
        readiness: ReadinessProbe,
        host: str = PUBLIC_HOST,
    ) -> None:
        super().__init__(port, _handler_for(registry, readiness), host)


HealthFactory = Callable[[CollectorRegistry, ReadinessProbe], HealthServer | None]


def on_metrics_port(port: int) -> HealthFactory:
    """The worker's own server on ``MAILFLEET_METRICS_PORT``; none when that is 0."""

    def make(registry: CollectorRegistry, readiness: ReadinessProbe) -> HealthServer | None:
        return HealthServer(port, registry, readiness) if port else None

    return make


def _handler_for(registry: CollectorRegistry, readiness: ReadinessProbe) -> type[PlainHandler]:
    class Handler(PlainHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._reply(200, generate_latest(registry), CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                self._reply(200, b"ok\n")
            elif path == "/readyz":
                checks = readiness()
                body = "".join(
                    f"{name} {'ok' if good else 'FAIL'}\n" for name, good in checks.items()
                )
                self._reply(200 if all(checks.values()) else 503, body.encode())
            else:
                self._reply(404, b"not found\n")

    return Handler
