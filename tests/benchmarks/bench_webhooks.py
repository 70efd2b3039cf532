"""Webhooks benchmark: the send rate with events only, beside the send rate and the webhook
rate with ``mailfleet webhooks`` POSTing every event to a local endpoint, in one run.

Run from the repository root (RabbitMQ and Redis on localhost)::

    .venv/bin/python tests/benchmarks/bench_webhooks.py --jobs 5000

Each phase uses a fresh namespace, Postfix's ``smtp-sink`` (or the aiosmtpd sink) as the
relay, two burst workers, and for the second phase one ``mailfleet webhooks`` process and an
in-process HTTP endpoint on 127.0.0.1 that answers 204 and counts ``webhook-id``s. Traffic
stays on 127.0.0.1. No figure is asserted; the exit status is 1 when an email or an event
went missing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from bench_throughput import (
    clean_up,
    log_dir,
    make_jobs,
    publish,
    run_workers,
    start_relay,
    worker_env,
)

from mailfleet.producer.devtools.sink import free_port
from mailfleet.shared.settings import load_settings


class Endpoint:
    """An HTTP endpoint that takes every POST with 204 and records when each id arrived."""

    def __init__(self) -> None:
        self.arrivals: dict[str, float] = {}
        self.requests = 0
        self._lock = threading.Lock()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length", "0")))
                with endpoint._lock:
                    endpoint.requests += 1
                    endpoint.arrivals.setdefault(self.headers["webhook-id"], time.monotonic())
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.port = free_port()
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self._server.shutdown()


def _phase(args: argparse.Namespace, *, webhooks: bool, logs: Path) -> dict[str, float]:
    namespace = f"bench-{uuid.uuid4().hex[:8]}"
    settings = load_settings(namespace=namespace)
    relay = start_relay("smtp-sink")
    endpoint = Endpoint() if webhooks else None
    hooks: subprocess.Popen[bytes] | None = None
    env = worker_env(namespace, relay.url, args.concurrency, None)
    try:
        if endpoint is not None:
            env["MAILFLEET_WEBHOOKS"] = json.dumps(
                [
                    {
                        "url": f"http://127.0.0.1:{endpoint.port}/hook",
                        "events": ["*"],
                        "secret": "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                    }
                ]
            )
            with (logs / "webhooks.log").open("wb") as log:
                script = Path(sys.executable).with_name("mailfleet")
                hooks = subprocess.Popen(
                    [str(script), "webhooks"], env=env, stdout=log, stderr=subprocess.STDOUT
                )
            time.sleep(1.5)  # its queue is declared and bound before the first event
        publish(settings, make_jobs(args.jobs))
        started = time.monotonic()
        run = run_workers(
            relay, count=args.workers, env=env, expected=args.jobs, wrap=[], logs=logs
        )
        figures = {
            "delivered": float(run.relay.received),
            "drain sends/s": run.relay.received / max(run.relay.span, 1e-9),
        }
        if endpoint is not None:
            deadline = time.monotonic() + 60 + args.jobs / 100
            while len(endpoint.arrivals) < args.jobs and time.monotonic() < deadline:
                time.sleep(0.05)
            last = max(endpoint.arrivals.values(), default=started)
            figures["events received"] = float(len(endpoint.arrivals))
            figures["duplicate posts"] = float(endpoint.requests - len(endpoint.arrivals))
            figures["webhooks/s (workers started to last POST)"] = len(endpoint.arrivals) / (
                last - started
            )
        return figures
    finally:
        if hooks is not None:
            hooks.terminate()
            hooks.wait(timeout=30)
        if endpoint is not None:
            endpoint.stop()
        relay.stop()
        clean_up(settings)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--jobs", type=int, default=5000, help="jobs per phase (5000)")
    parser.add_argument("--workers", type=int, default=2, help="burst workers (2)")
    parser.add_argument("--concurrency", type=int, default=8, help="sender threads each (8)")
    args = parser.parse_args()
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"webhooks benchmark: {args.jobs} jobs a phase, load average {load}", flush=True)
    missing = False
    with log_dir(None, "mailfleet-bench-webhooks-") as logs:
        for webhooks in (False, True):
            figures = _phase(args, webhooks=webhooks, logs=logs)
            print(f"-- events {'+ webhooks' if webhooks else 'only'}")
            for name, value in figures.items():
                print(f"  {name:44} {value:10.1f}")
            missing |= figures["delivered"] < args.jobs
            missing |= webhooks and figures["events received"] < args.jobs
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
