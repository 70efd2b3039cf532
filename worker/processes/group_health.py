"""The one public ``/metrics``, ``/healthz`` and ``/readyz`` of a process group
(``mailfleet worker --processes N``) on ``MAILFLEET_METRICS_PORT``.

Each child serves its own endpoints on 127.0.0.1 at a port of its choosing and tells the
parent which (``child.py``); a request here asks every child in turn:

- ``/metrics``: the children's metrics merged, each sample labelled ``process="<index>"``;
- ``/readyz``: 200 only if every child answers its own ``/readyz`` with 200; one line per
  child says which is not ready and why;
- ``/healthz``: 200 while every child process is alive (a crashed one is being restarted).
"""

from __future__ import annotations

import http.client
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from prometheus_client import CONTENT_TYPE_LATEST

from mailfleet.worker.health import PUBLIC_HOST, HttpEndpoint, PlainHandler
from mailfleet.worker.processes.group_metrics import merge

_CHILD_TIMEOUT = 2.0  # a child that takes longer is reported as not answering


@dataclass(frozen=True)
class Member:
    """One child as the parent last saw it."""

    index: int
    pid: int | None  # None while it is not running (crashed and due for a restart, or done)
    port: int  # 0 until its health server listens
    finished: bool = False  # --burst: it drained the queues and exited 0


Members = Callable[[], Sequence[Member]]


class GroupHealth(HttpEndpoint):
    def __init__(self, port: int, members: Members, host: str = PUBLIC_HOST) -> None:
        super().__init__(port, _handler_for(members), host)


def _ask(port: int, path: str) -> tuple[int, str] | None:
    """``GET`` a child's endpoint: status and body, or None when it does not answer."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=_CHILD_TIMEOUT)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read().decode()
    except (OSError, http.client.HTTPException):
        return None
    finally:
        connection.close()


def metrics(members: Sequence[Member]) -> bytes:
    texts: dict[int, str] = {}
    for member in members:
        if member.pid is not None and member.port:
            answer = _ask(member.port, "/metrics")
            if answer is not None and answer[0] == 200:
                texts[member.index] = answer[1]
    return merge(texts)


def readiness(members: Sequence[Member]) -> tuple[bool, str]:
    lines, ready = [], True
    for member in members:
        problem = _not_ready(member)
        ready = ready and problem is None
        lines.append(f"process {member.index} {'ok' if problem is None else f'FAIL ({problem})'}")
    return ready, "".join(f"{line}\n" for line in lines)


def _not_ready(member: Member) -> str | None:
    if member.pid is None:
        return "finished" if member.finished else "not running"
    if not member.port:
        return "starting"
    answer = _ask(member.port, "/readyz")
    if answer is None:
        return "no answer"
    status, body = answer
    if status == 200:
        return None
    failing = [line.split()[0] for line in body.splitlines() if line.endswith(" FAIL")]
    return ", ".join(f"{check} FAIL" for check in failing) or f"HTTP {status}"


def liveness(members: Sequence[Member]) -> tuple[bool, str]:
    lines = [
        f"process {m.index} ok (pid {m.pid})"
        if m.pid is not None
        else f"process {m.index} {'finished' if m.finished else 'FAIL (not running)'}"
        for m in members
    ]
    alive = all(m.pid is not None or m.finished for m in members)
    return alive, "".join(f"{line}\n" for line in lines)


def _handler_for(members: Members) -> type[PlainHandler]:
    class Handler(PlainHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._reply(200, metrics(members()), CONTENT_TYPE_LATEST)
            elif path in {"/readyz", "/healthz"}:
                good, body = (readiness if path == "/readyz" else liveness)(members())
                self._reply(200 if good else 503, body.encode())
            else:
                self._reply(404, b"not found\n")

    return Handler
