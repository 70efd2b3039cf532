"""Rate-limit benchmark: does a fleet of W workers hold the global limit R at the relay, and
does transactional mail still get through a saturating bulk backlog quickly?

Run from the repository root (RabbitMQ and Redis on localhost, as for the integration tests)::

    .venv/bin/python tests/benchmarks/bench_rate_limit.py --rate 200 --workers 1,2,4

For each W in ``--workers``, in a fresh namespace (``bench-rl-<hex>``), traffic to 127.0.0.1:

1. an in-process aiosmtpd ``SmtpSink`` relay that keeps every message with its arrival time
   (a few hundred messages/s is its ceiling; R = 200/s is well inside it);
2. ``Producer.publish_many`` of a bulk backlog (``--backlog``, large enough to outlast the run,
   so the workers always have bulk mail waiting for tokens);
3. W ``mailfleet worker`` processes with ``MAILFLEET_RATE_LIMIT=R/s`` (and ``--burst`` as
   ``MAILFLEET_RATE_BURST`` when given); the run waits until every one consumes both lanes
   and the relay saw its first message;
4. after one more second (start-up left out), the measured window: until ``--jobs`` messages
   arrived at the relay, a transactional job is published every 100 ms, and its latency is
   its arrival at the relay minus the moment its publish was confirmed;
5. SIGTERM to the workers, then the namespace's queues (with the rest of the backlog) and
   its Redis keys are removed.

Figures per W, over the arrivals in the measured window: the largest number of messages in
any sliding 1-second window and the mean rate, both divided by R, and the p50 / p99 / max of
the transactional latencies. Targets (printed, never asserted): max window <= 1.02 R + burst,
mean >= 0.98 R, transactional p99 < 1 s. The exit status is 1 only when a run broke (a worker
died, start-up or the window timed out).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from bench_throughput import log_dir  # the benchmarks run as scripts from this folder
from kombu.connection import Connection

from mailfleet.producer.connection import open_connection
from mailfleet.producer.devtools.namespace import remove_namespace
from mailfleet.producer.devtools.sink import SmtpSink
from mailfleet.producer.publisher import Producer
from mailfleet.producer.topology import queue_depths, topology_of
from mailfleet.shared.durations import Rate
from mailfleet.shared.job import EmailJob, Lane
from mailfleet.shared.settings import Settings, load_settings
from mailfleet.worker.limits.bucket import default_burst

HOST = "127.0.0.1"
TICK = 0.1  # one transactional job every 100 ms
WARMUP = 1.0  # seconds of arrivals left out after start-up
_STARTUP_TIMEOUT = 60.0
_DRAIN_TIMEOUT = 10.0  # for the last transactional jobs to arrive after the window
_STOP_TIMEOUT = 40.0  # SIGTERM → exit; the worker's default shutdown grace is 25 s


# --------------------------------------------------------------------------- jobs


def bulk_job(number: int) -> EmailJob:
    return EmailJob.model_validate(
        {
            "id": f"bulk-{number}",
            "from": "Mailfleet Bench <bench@mailfleet.test>",
            "to": [f"user{number}@example.com"],
            "subject": f"Bulk benchmark email {number}",
            "text": f"Hello!\n\nThis is bulk benchmark email {number}.\n",
            "lane": Lane.BULK.value,
            "tags": {"campaign": "bench-rl"},
        }
    )


def transactional_job(number: int) -> EmailJob:
    return EmailJob.model_validate(
        {
            "id": f"tx-{number}",
            "from": "Mailfleet Bench <bench@mailfleet.test>",
            "to": [f"customer{number}@example.org"],
            "subject": f"Your code {number:06d}",
            "text": f"Your one-time code is {number:06d}.\n",
            "lane": Lane.TRANSACTIONAL.value,
        }
    )


# --------------------------------------------------------------------------- workers


def worker_env(settings: Settings, relay_url: str) -> dict[str, str]:
    """The environment that makes ``mailfleet worker`` use ``settings`` (what matters here)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("MAILFLEET_")}
    assert settings.rate_limit is not None
    env.update(
        {
            "MAILFLEET_AMQP_URL": settings.amqp_url.get_secret_value(),
            "MAILFLEET_REDIS_URL": settings.redis_url.get_secret_value(),
            "MAILFLEET_NAMESPACE": settings.namespace,
            "MAILFLEET_SMTP_RELAYS": relay_url,
            "MAILFLEET_RATE_LIMIT": str(settings.rate_limit),
            "MAILFLEET_CONCURRENCY": str(settings.concurrency),
            "MAILFLEET_PREFETCH": str(settings.prefetch),
            "MAILFLEET_METRICS_PORT": "0",
            "MAILFLEET_LOG_LEVEL": "WARNING",
            "MAILFLEET_LOG_FORMAT": "json",
        }
    )
    if settings.rate_burst is not None:
        env["MAILFLEET_RATE_BURST"] = str(settings.rate_burst)
    return env


class Workers:
    """W ``mailfleet worker`` processes, stderr to files (a pipe nobody reads would block)."""

    def __init__(self, count: int, env: dict[str, str], logs: Path) -> None:
        logs.mkdir(parents=True, exist_ok=True)
        self.logs = [logs / f"worker-{number}.log" for number in range(count)]
        self._files: list[IO[bytes]] = [path.open("wb") for path in self.logs]
        command = [sys.executable, "-m", "mailfleet.shared.cli", "worker"]
        self.processes = [
            subprocess.Popen(
                command, env=env, stdout=subprocess.DEVNULL, stderr=log, stdin=subprocess.DEVNULL
            )
            for log in self._files
        ]

    def dead(self) -> list[int]:
        return [number for number, p in enumerate(self.processes) if p.poll() is not None]

    def terminate(self, timeout: float) -> list[int | None]:
        """SIGTERM to all, wait (bounded), SIGKILL what is left; the exit codes (None: killed)."""
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        codes: list[int | None] = []
        for process in self.processes:
            try:
                codes.append(process.wait(timeout=max(0.1, deadline - time.monotonic())))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
                codes.append(None)
        for log in self._files:
            log.close()
        return codes

    def tails(self, size: int = 2000) -> str:
        return "\n".join(
            f"--- {path.name}\n{path.read_text(errors='replace')[-size:]}" for path in self.logs
        )


# --------------------------------------------------------------------------- one run


@dataclass
class Run:
    workers: int
    namespace: str
    window_start: float = 0.0  # wall clock (time.time(), as the sink's received_at)
    window_end: float = 0.0
    startup_seconds: float = 0.0  # workers started → all consuming and the first arrival
    arrivals: list[float] = field(default_factory=list)  # in the window, sorted
    published: dict[str, float] = field(default_factory=dict)  # tx id → publish confirmed at
    arrived: dict[str, float] = field(default_factory=dict)  # tx id → relay arrival
    backlog_left: int | None = None
    exit_codes: list[int | None] = field(default_factory=list)
    problem: str = ""

    @property
    def seconds(self) -> float:
        return self.window_end - self.window_start

    @property
    def latencies(self) -> list[float]:
        """Transactional latencies in seconds; a job that never arrived counts as infinite."""
        return sorted(
            self.arrived[job_id] - confirmed if job_id in self.arrived else math.inf
            for job_id, confirmed in self.published.items()
        )


def max_in_any_second(times: list[float]) -> int:
    """The most arrivals in any half-open window [t, t + 1 s); ``times`` sorted."""
    best, start = 0, 0
    for end, moment in enumerate(times):
        while moment - times[start] >= 1.0:
            start += 1
        best = max(best, end - start + 1)
    return best


def percentile(ordered: list[float], share: float) -> float:
    """Nearest-rank percentile of sorted ``ordered`` (nan when empty)."""
    if not ordered:
        return math.nan
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def histogram(times: list[float], start: float, end: float, width: float = 0.1) -> list[int]:
    bins = [0] * max(1, math.ceil((end - start) / width))
    for moment in times:
        index = int((moment - start) / width)
        if 0 <= index < len(bins):
            bins[index] += 1
    return bins


def _consumers(connection: Connection, settings: Settings) -> int:
    """Consumers on the lane with the fewest (each worker consumes both lanes)."""
    depths = queue_depths(connection, topology_of(settings))
    return min(depths[settings.names.lane_queue(lane)][1] for lane in Lane)


def _wait_until_started(
    run: Run, workers: Workers, sink: SmtpSink, settings: Settings, connection: Connection
) -> bool:
    """Every worker consumes both lanes and the relay has its first message (bounded)."""
    started = time.monotonic()
    deadline = started + _STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if workers.dead():
            run.problem = f"worker(s) {workers.dead()} exited during start-up"
            return False
        if _consumers(connection, settings) >= run.workers and sink.count > 0:
            run.startup_seconds = time.monotonic() - started
            return True
        time.sleep(0.1)
    run.problem = f"workers not all consuming within {_STARTUP_TIMEOUT:.0f}s"
    return False


def _measure(
    run: Run, workers: Workers, sink: SmtpSink, producer: Producer, jobs: int, rate: float
) -> None:
    """Publish a transactional job every TICK until ``jobs`` arrivals after the window start."""
    time.sleep(WARMUP)
    run.window_start = time.time()
    target = sink.count + jobs
    deadline = time.monotonic() + 30.0 + 3 * jobs / rate
    next_tick = time.monotonic()
    number = 0
    while sink.count < target:
        now = time.monotonic()
        if now > deadline:
            run.problem = (
                f"only {sink.count - target + jobs} of {jobs} arrivals before the deadline"
            )
            break
        if workers.dead():
            run.problem = f"worker(s) {workers.dead()} exited during the window"
            break
        if now >= next_tick:
            job_id = producer.publish(transactional_job(number))
            run.published[job_id] = time.time()
            number += 1
            next_tick = max(next_tick + TICK, time.monotonic())
            continue
        sink.wait_for(target, timeout=next_tick - now)
    run.window_end = time.time()


def _collect(run: Run, sink: SmtpSink) -> None:
    """Arrivals in the window; transactional arrivals, waiting (bounded) for the stragglers."""
    deadline = time.monotonic() + _DRAIN_TIMEOUT
    scanned = 0
    while True:
        messages = sink.messages
        for message in messages[scanned:]:
            job_id = message.job_id
            if job_id is not None and job_id in run.published:
                run.arrived[job_id] = message.received_at
        scanned = len(messages)
        if len(run.arrived) == len(run.published) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    run.arrivals = sorted(
        message.received_at
        for message in sink.messages
        if run.window_start <= message.received_at <= run.window_end
    )


def clean_up(settings: Settings) -> int | None:
    """Delete the namespace's queues (the backlog with them) and Redis keys; bulk left over."""
    left = None
    connection = open_connection(settings)
    try:
        with contextlib.suppress(Exception):
            depths = queue_depths(connection, topology_of(settings))
            left = depths[settings.names.lane_queue(Lane.BULK)][0]
    finally:
        connection.release()
    remove_namespace(settings)
    return left


def run_one(args: argparse.Namespace, count: int, logs: Path) -> Run:
    namespace = f"bench-rl-{uuid.uuid4().hex[:8]}"
    settings = load_settings(
        namespace=namespace,
        rate_limit=Rate.parse(f"{args.rate}/s"),
        rate_burst=args.burst,
        **({"concurrency": args.concurrency} if args.concurrency else {}),
        **({"prefetch": args.prefetch} if args.prefetch else {}),
    )
    run = Run(workers=count, namespace=namespace)
    sink = SmtpSink(HOST, keep_messages=True).start()
    workers: Workers | None = None
    try:
        with Producer(settings) as producer:
            print(
                f"[W={count}] namespace {namespace}: publishing {args.backlog} bulk jobs ...",
                flush=True,
            )
            producer.publish_many(bulk_job(number) for number in range(args.backlog))
            print(f"[W={count}] starting {count} worker(s) ...", flush=True)
            workers = Workers(count, worker_env(settings, sink.url), logs / namespace)
            connection = open_connection(settings)
            try:
                started = _wait_until_started(run, workers, sink, settings, connection)
            finally:
                connection.release()
            if started:
                print(
                    f"[W={count}] started in {run.startup_seconds:.1f}s; measuring "
                    f"{args.jobs} arrivals ...",
                    flush=True,
                )
                _measure(run, workers, sink, producer, args.jobs, args.rate)
                _collect(run, sink)
    finally:
        if workers is not None:
            run.exit_codes = workers.terminate(_STOP_TIMEOUT)
            if run.problem or any(code != 0 for code in run.exit_codes):
                print(workers.tails(), file=sys.stderr)
        sink.stop()
        run.backlog_left = clean_up(settings)
    return run


# --------------------------------------------------------------------------- report


def _ms(seconds: float) -> str:
    if math.isnan(seconds):
        return "-"
    return "lost" if math.isinf(seconds) else f"{seconds * 1000:.0f}"


def _verdict(ok: bool) -> str:
    return "ok" if ok else "MISS"


def print_report(runs: list[Run], args: argparse.Namespace, burst: int) -> None:
    rate = float(args.rate)
    max_target = 1.02 + burst / rate
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print()
    print(
        f"mailfleet rate limit: R = {args.rate}/s, burst {burst}, backlog {args.backlog} bulk, "
        f"a transactional job every {TICK * 1000:.0f} ms; {os.cpu_count()} CPUs, "
        f"load average {load}"
    )
    header = (
        f"{'W':>2}  {'arrivals':>8}  {'window s':>8}  {'max 1s/R':>8}  {'mean/R':>7}  "
        f"{'tx':>4}  {'tx p50 ms':>9}  {'tx p99 ms':>9}  {'tx max ms':>9}  "
        f"{'max':>4}  {'mean':>4}  {'p99':>4}"
    )
    print("-" * len(header))
    print(header)
    print("-" * len(header))
    for run in runs:
        if not run.arrivals or run.seconds <= 0:
            print(f"{run.workers:>2}  no measurement: {run.problem or 'no arrivals'}")
            continue
        peak = max_in_any_second(run.arrivals) / rate
        mean = len(run.arrivals) / run.seconds / rate
        latencies = run.latencies
        p50, p99 = percentile(latencies, 0.50), percentile(latencies, 0.99)
        print(
            f"{run.workers:>2}  {len(run.arrivals):>8}  {run.seconds:>8.2f}  {peak:>8.3f}  "
            f"{mean:>7.3f}  {len(latencies):>4}  {_ms(p50):>9}  {_ms(p99):>9}  "
            f"{_ms(latencies[-1] if latencies else math.nan):>9}  "
            f"{_verdict(peak <= max_target):>4}  {_verdict(mean >= 0.98):>4}  "
            f"{_verdict(p99 < 1.0):>4}"
        )
    print("-" * len(header))
    print(
        f"targets: max 1s/R <= 1.02 + burst/R = {max_target:.3f} "
        f"({math.floor(max_target * rate)} messages); mean/R >= 0.98; tx p99 < 1000 ms"
    )
    for run in runs:
        notes = []
        if run.problem:
            notes.append(run.problem)
        if any(code != 0 for code in run.exit_codes):
            notes.append(f"worker exit codes {run.exit_codes}")
        if run.backlog_left == 0:
            notes.append("the bulk backlog ran dry: raise --backlog")
        lost = sum(1 for job_id in run.published if job_id not in run.arrived)
        if lost:
            notes.append(f"{lost} transactional job(s) not at the relay {_DRAIN_TIMEOUT:.0f}s on")
        if notes:
            print(f"W={run.workers}: " + "; ".join(notes))
    if args.histogram:
        for run in runs:
            bins = histogram(run.arrivals, run.window_start, run.window_end)
            print(f"\nW={run.workers}: arrivals per 100 ms (one line = 2 s)")
            for line in range(0, len(bins), 20):
                print(
                    f"{line / 10:6.1f}s  " + " ".join(f"{value:2d}" for value in bins[line:][:20])
                )


# --------------------------------------------------------------------------- main


def _worker_counts(text: str) -> list[int]:
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of numbers: {text}") from None
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError("worker counts must be at least 1")
    return counts


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rate", type=int, default=200, help="global limit per second (200)")
    parser.add_argument(
        "--burst", type=int, help="MAILFLEET_RATE_BURST (default: the worker's, 5%% of a second)"
    )
    parser.add_argument("--jobs", type=int, default=3000, help="arrivals to measure (3000)")
    parser.add_argument(
        "--workers", type=_worker_counts, default=[1, 2, 4], help="worker counts (1,2,4)"
    )
    parser.add_argument("--backlog", type=int, default=20000, help="bulk jobs queued (20000)")
    parser.add_argument("--concurrency", type=int, help="sender threads per worker (default 8)")
    parser.add_argument("--prefetch", type=int, help="MAILFLEET_PREFETCH (worker default)")
    parser.add_argument(
        "--histogram", action="store_true", help="print arrivals per 100 ms of each window"
    )
    parser.add_argument("--logs", type=Path, help="keep worker logs here (default: temp dir)")
    args = parser.parse_args(argv)
    for name in ("rate", "jobs", "backlog"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.burst is not None and args.burst < 1:
        parser.error("--burst must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    burst = args.burst or default_burst(Rate.parse(f"{args.rate}/s"))
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"rate limit {args.rate}/s, burst {burst}; load average before: {load}", flush=True)
    runs: list[Run] = []
    with log_dir(args.logs, "mailfleet-bench-rl-") as logs:
        for count in args.workers:
            runs.append(run_one(args, count, logs))
    print_report(runs, args, burst)
    return 1 if any(run.problem for run in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
