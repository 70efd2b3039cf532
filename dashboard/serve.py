"""Serving the dashboard with uvicorn, in the foreground or on a thread (demo, tests)."""

from __future__ import annotations

import socket
import threading
import time

import uvicorn

from mailfleet.dashboard.app import build_app
from mailfleet.shared.errors import MailfleetError
from mailfleet.shared.settings import Settings


def _server(settings: Settings, host: str, port: int) -> uvicorn.Server:
    config = uvicorn.Config(
        build_app(settings), host=host, port=port, log_level="warning", access_log=False
    )
    return uvicorn.Server(config)


def _listening(host: str, port: int) -> socket.socket:
    """Bind first, so a taken port is one clear error before anything else starts."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise MailfleetError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def url_of(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


def serve(settings: Settings, host: str, port: int) -> bool:
    """Serve until Ctrl-C; False when uvicorn stopped on an error."""
    sock = _listening(host, port)
    bound = sock.getsockname()[1]
    print(
        f"mailfleet dashboard: namespace {settings.namespace!r} on {url_of(host, bound)} "
        "(Ctrl-C to stop)",
        flush=True,
    )
    server = _server(settings, host, bound)
    server.run(sockets=[sock])
    return server.started


class DashboardThread:
    """The dashboard on a daemon thread: ``with DashboardThread(...) as url: ...``."""

    def __init__(self, settings: Settings, host: str = "127.0.0.1", port: int = 0) -> None:
        self._sock = _listening(host, port)
        self.port = int(self._sock.getsockname()[1])
        self.url = url_of(host if host not in {"0.0.0.0", "::"} else "127.0.0.1", self.port)  # noqa: S104
        self._server = _server(settings, host, self.port)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    def __enter__(self) -> DashboardThread:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        if not self._server.started:
            raise MailfleetError("the dashboard did not start within 10 s")
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(10)
        self._sock.close()
