"""``mailfleet unsubscribe-server``'s app served by a real uvicorn on loopback, in a thread."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import redis
import uvicorn

from mailfleet.producer.unsubscribe.app import build_app
from mailfleet.shared.settings import Settings
from mailfleet.shared.suppression import SuppressionList
from mailfleet.shared.unsubscribe_token import UnsubscribeTokens
from tests.integration.helpers import wait_until

PORTS = range(8641, 8661)  # this suite's HTTP ports


def free_http_port() -> int:
    for port in PORTS:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {PORTS.start}-{PORTS.stop - 1}")


@contextmanager
def serving(settings: Settings, client: redis.Redis) -> Iterator[str]:
    """The server's base URL while it runs."""
    assert settings.unsubscribe_secret is not None
    app = build_app(
        UnsubscribeTokens(settings.unsubscribe_secret), SuppressionList(client, settings.names)
    )
    port = free_http_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="unsubscribe-server", daemon=True)
    thread.start()
    try:
        assert wait_until(lambda: server.started, timeout=10)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
