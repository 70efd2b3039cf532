"""For the dashboard's tests: dead letters published in bulk, a port of the dashboard's
range, the dashboard on a thread, and Debian's chromium through playwright."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from mailfleet.dashboard.serve import DashboardThread
from mailfleet.producer.confirms import ConfirmChannel, Outgoing
from mailfleet.producer.connection import open_connection
from mailfleet.shared import names as headers
from mailfleet.shared.job import CONTENT_TYPE, JOB_TYPE, EmailJob
from mailfleet.shared.settings import Settings

HTTP_PORTS = range(8671, 8691)  # this suite's share of the machine's ports
CHROMIUM_VARIABLE = "MAILFLEET_CHROMIUM"


def free_port(host: str = "127.0.0.1") -> int:
    """The first port of :data:`HTTP_PORTS` nothing listens on."""
    for port in HTTP_PORTS:
        with socket.socket() as probe:
            try:
                probe.bind((host, port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"every port of {HTTP_PORTS} is taken")


@contextlib.contextmanager
def dashboard(settings: Settings, host: str = "127.0.0.1") -> Iterator[DashboardThread]:
    for _ in range(5):  # another run may take the port between the probe and the bind
        try:
            server = DashboardThread(settings, host, free_port(host))
        except Exception:
            time.sleep(0.1)
            continue
        with server:
            yield server
        return
    raise RuntimeError("could not start the dashboard on any port of the range")


def publish_dead_letters(
    settings: Settings,
    jobs: list[EmailJob],
    *,
    reason: str = "permanent",
    error: str = "550 5.7.1 rejected by policy",
) -> None:
    """Put ``jobs`` into ``{ns}.dead`` with the headers the worker writes, confirmed."""
    failed_at = (datetime.now(UTC) - timedelta(seconds=2)).isoformat(timespec="seconds")
    outgoing = []
    for job in jobs:
        message_headers: dict[str, Any] = {
            headers.ATTEMPT: 1,
            headers.REASON: reason,
            headers.ERROR: error,
            headers.ATTEMPTS: 1,
            headers.FAILED_AT: failed_at,
            headers.LANE: job.lane.value,
        }
        outgoing.append(
            Outgoing(
                exchange=settings.names.dead_letter_exchange,
                routing_key=job.lane.value,
                body=job.to_wire(),
                message_id=job.id,
                properties={
                    "content_type": CONTENT_TYPE,
                    "type": JOB_TYPE,
                    "delivery_mode": 2,
                    "timestamp": int(time.time()),
                    "application_headers": message_headers,
                },
            )
        )
    connection = open_connection(settings)
    try:
        channel = ConfirmChannel(connection, confirm_timeout=30)
        try:
            for start in range(0, len(outgoing), 1000):
                batch = outgoing[start : start + 1000]
                confirmed = channel.publish(batch, window=len(batch)).confirmed
                assert len(batch) == len(confirmed)
        finally:
            channel.close()
    finally:
        connection.release()


def chromium_path() -> str:
    """Debian's chromium (``apt-get install -y chromium``); playwright cannot fetch one here."""
    path = os.environ.get(CHROMIUM_VARIABLE) or shutil.which("chromium")
    if path is None:
        raise RuntimeError(f"no chromium: apt-get install -y chromium (or set {CHROMIUM_VARIABLE})")
    return path


def launch_args() -> list[str]:
    """Chromium refuses to run as root with its sandbox (CI runs as root)."""
    return ["--no-sandbox"] if os.geteuid() == 0 else []


def screenshot_dir(fallback: str) -> str:
    """Where the browser tests save their screenshots: ``MAILFLEET_SCREENSHOTS`` (to renew
    the README's pictures, e.g. docs/images) or the test's own temporary folder."""
    target = os.environ.get("MAILFLEET_SCREENSHOTS") or fallback
    os.makedirs(target, exist_ok=True)
    return target
