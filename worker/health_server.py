"""The worker's HTTP endpoints on ``MAILFLEET_METRICS_PORT``: ``/metrics`` (Prometheus),
``/healthz`` (the process is alive) and ``/readyz`` (broker and Redis connected, consuming)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

ReadinessProbe = Callable[[], dict[str, bool]]


class HealthServer:
    def __init__(
        self,
        port: int,
        registry: CollectorRegistry,
        readiness: ReadinessProbe,
        host: str = "0.0.0.0",  # noqa: S104 (probes and scrapes come from outside the pod)
    ) -> None:
        handler = _handler_for(registry, readiness)
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="health", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> HealthServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _handler_for(
    registry: CollectorRegistry, readiness: ReadinessProbe
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
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

        def _reply(self, status: int, body: bytes, content_type: str = "text/plain") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            """Scrapes every few seconds would flood the log; stay quiet."""

    return Handler
