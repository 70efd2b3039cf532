"""Dashboard benchmark: start-up time, and page-render time with 10 000 dead letters.

Run from the repository root (RabbitMQ and Redis on localhost)::

    .venv/bin/python tests/benchmarks/bench_dashboard.py            # = --letters 10000 --rounds 20

In a fresh namespace ``bench-dash-<hex>``: the topology is declared and ``--letters`` dead
letters are published (confirmed) straight to ``{ns}.dead`` with the headers the worker
writes. Start-up: ``mailfleet dashboard`` is started as a process three times; each time the
clock runs from ``Popen`` until ``GET /`` answers 200 (Python's imports, settings, the first
page's AMQP and Redis reads). Render: one dashboard process, each page fetched ``--rounds``
times, each over a new HTTP connection on 127.0.0.1 (see below); the time is the whole
request (the server's reads of RabbitMQ and Redis, rendering, transfer). The namespace is
removed at the end. No figure is asserted.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from mailfleet.producer.confirms import ConfirmChannel, Outgoing
from mailfleet.producer.connection import open_connection
from mailfleet.producer.devtools.namespace import remove_namespace
from mailfleet.producer.devtools.own_servers import free_port
from mailfleet.producer.topology import declare, topology_of
from mailfleet.shared import names as headers
from mailfleet.shared.job import CONTENT_TYPE, JOB_TYPE, EmailJob
from mailfleet.shared.settings import Settings, load_settings


def _job(number: int) -> EmailJob:
    return EmailJob.model_validate(
        {
            "id": f"bench-{number}",
            "from": "Shop <shop@example.com>",
            "to": [f"user{number}@example.org"],
            "subject": f"Order {number}",
            "text": "It shipped.",
        }
    )


def fill(settings: Settings, letters: int) -> float:
    """Publish ``letters`` dead letters, confirmed; the seconds it took."""
    started = time.monotonic()
    failed_at = (datetime.now(UTC) - timedelta(seconds=5)).isoformat(timespec="seconds")
    connection = open_connection(settings)
    try:
        declare(connection, topology_of(settings))
        channel = ConfirmChannel(connection, confirm_timeout=60)
        for start in range(0, letters, 1000):
            batch = []
            for number in range(start, min(start + 1000, letters)):
                message_headers: dict[str, Any] = {
                    headers.ATTEMPT: 1,
                    headers.REASON: "permanent" if number % 10 else "exhausted",
                    headers.ERROR: "550 5.1.1 No such user here",
                    headers.ATTEMPTS: 1,
                    headers.FAILED_AT: failed_at,
                    headers.LANE: "transactional",
                }
                batch.append(
                    Outgoing(
                        exchange=settings.names.dead_letter_exchange,
                        routing_key="transactional",
                        body=_job(number).to_wire(),
                        message_id=f"bench-{number}",
                        properties={
                            "content_type": CONTENT_TYPE,
                            "type": JOB_TYPE,
                            "delivery_mode": 2,
                            "application_headers": message_headers,
                        },
                    )
                )
            channel.publish(batch, window=len(batch))
        channel.close()
    finally:
        connection.release()
    return time.monotonic() - started


def _env(settings: Settings) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("MAILFLEET_")}
    env["MAILFLEET_AMQP_URL"] = settings.amqp_url.get_secret_value()
    env["MAILFLEET_REDIS_URL"] = settings.redis_url.get_secret_value()
    env["MAILFLEET_NAMESPACE"] = settings.namespace
    return env


def start(settings: Settings, port: int) -> tuple[subprocess.Popen[bytes], float]:
    """A dashboard process, and the seconds from Popen until ``GET /`` answered 200."""
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "mailfleet.shared.cli", "dashboard", "--port", str(port)],
        env=_env(settings),
        stdout=subprocess.DEVNULL,
    )
    deadline = started + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/", timeout=5).status_code == 200:
                return process, time.monotonic() - started
        except httpx.TransportError:
            time.sleep(0.01)
    process.kill()
    raise SystemExit("the dashboard did not answer within 30 s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    process.wait(timeout=15)


def _row(label: str, times: list[float]) -> str:
    ms = sorted(t * 1000 for t in times)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    return f"{label:<42} {statistics.median(ms):8.1f} {p95:8.1f} {ms[-1]:8.1f}   (n={len(ms)})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--letters", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    settings = load_settings(namespace=f"bench-dash-{uuid.uuid4().hex[:8]}")
    port = free_port()
    print(f"namespace {settings.namespace}: {args.letters} dead letters, port {port}")
    try:
        print(f"filled in {fill(settings, args.letters):.1f} s")
        startups = []
        for _ in range(3):
            process, seconds = start(settings, port)
            startups.append(seconds)
            _stop(process)
        print(f"{'':<42} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
        print(_row("start-up: Popen -> first 200 of GET /", startups))
        process, _ = start(settings, port)
        pages = {
            "GET /dead-letters (first page, 50)": "/dead-letters",
            "GET /dead-letters?reason=exhausted (1 in 10)": "/dead-letters?reason=exhausted",
            "GET /dead-letters/letter?id=bench-0": "/dead-letters/letter?id=bench-0",
            "GET / (overview)": "/",
            "GET /suppression": "/suppression",
            "GET /limits": "/limits",
        }
        try:
            # A connection per request: httpx on a kept-alive connection adds a delayed-ACK
            # wait (about 40 ms) that is the client's, not the dashboard's.
            fresh = httpx.Limits(max_keepalive_connections=0)
            with httpx.Client(
                base_url=f"http://127.0.0.1:{port}", timeout=30, limits=fresh
            ) as client:
                for label, path in pages.items():
                    times = []
                    # bench-0 was on the first page: its detail comes from what the table
                    # read (dashboard/seen_letters.py), without reading the queue.
                    rounds = args.rounds
                    for _ in range(rounds):
                        began = time.monotonic()
                        answer = client.get(path)
                        times.append(time.monotonic() - began)
                        assert answer.status_code == 200, (path, answer.status_code)
                    print(_row(label, times))
        finally:
            _stop(process)
    finally:
        remove_namespace(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
