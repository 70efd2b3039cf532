"""What one child of a process group runs, right after the parent forked it
(``supervisor.py``): the ordinary ``Worker``, with its health server on 127.0.0.1 at a port
of its own choosing, which it writes into ``port`` for the parent's ``group_health.py``."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys

import structlog
from prometheus_client import CollectorRegistry

from mailfleet.shared.errors import MailfleetError
from mailfleet.shared.settings import Settings
from mailfleet.worker.health import (
    HealthFactory,
    HealthServer,
    HttpEndpoint,
    ReadinessProbe,
    on_metrics_port,
)
from mailfleet.worker.runner import Worker

log = structlog.get_logger("mailfleet.worker")
STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT})
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def run_child(
    settings: Settings,
    index: int,
    port: ctypes.c_int,
    *,
    burst: bool,
    parent_pid: int,
    inherited: HttpEndpoint | None,
) -> None:
    """The child's whole life; exits with the worker's exit code.

    The parent forks with SIGTERM and SIGINT blocked, so none can reach the parent's
    handlers copied into this process; until ``Worker.run`` installs its own, either signal
    simply ends the child, which holds no message yet."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    _stop_with_parent(parent_pid)
    if inherited is not None:
        inherited.close_inherited()  # the group's public port stays the parent's alone
    structlog.contextvars.bind_contextvars(process=index)
    health = _reporting(port) if settings.metrics_port else on_metrics_port(0)
    try:
        code = Worker(settings, burst=burst, health=health).run()
    except (MailfleetError, OSError) as exc:
        log.error("worker_failed", error=str(exc))
        code = 1
    sys.exit(code)


def _reporting(port: ctypes.c_int) -> HealthFactory:
    def make(registry: CollectorRegistry, readiness: ReadinessProbe) -> HealthServer:
        server = HealthServer(0, registry, readiness, host="127.0.0.1")
        port.value = server.port
        return server

    return make


def _stop_with_parent(parent_pid: int) -> None:
    """Linux: have the kernel send SIGTERM when the parent dies (even of SIGKILL), so no
    worker keeps consuming without the group that supervises and serves it."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent_pid:  # it died before the request above took effect
        sys.exit(1)
