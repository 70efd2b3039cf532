"""Throughput benchmark: relay ceiling, ``publish_many`` with confirms, end-to-end sends/s.

Run from the repository root (RabbitMQ and Redis on localhost, as for the integration tests)::

    .venv/bin/python tests/benchmarks/bench_throughput.py --jobs 20000 --workers 2 --concurrency 8

Phases, all in one run and one fresh namespace (``bench-<hex>``), traffic to 127.0.0.1 only:

1. relay: Postfix ``smtp-sink`` on a free port when it is installed (it counts what it
   accepts and prints the counters on stdout), else the in-process aiosmtpd ``SmtpSink``
   (with a warning: that relay, not mailfleet, is then what the figures measure);
2. relay ceiling: a few thousand messages blasted at the relay with ``smtplib`` from
   several processes, each with several reused connections (one thread per connection);
3. ``Producer.publish_many`` of N jobs with publisher confirms, timed alone;
4. W ``mailfleet worker --burst`` processes drain the queues and exit; timed from their
   start to the last exit, and from the relay's first to its last accepted message;
5. what the relay received beside what was published, dead letters, then the namespace's
   queues, exchanges and Redis keys are removed.

No figure is asserted; the exit status is 1 only when a message went missing or was
dead-lettered.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import pwd
import re
import resource
import shutil
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.queues import Queue as MpQueue
from multiprocessing.synchronize import Barrier as MpBarrier
from pathlib import Path
from typing import IO, Protocol

from mailfleet.producer.connection import open_connection
from mailfleet.producer.devtools.namespace import remove_namespace
from mailfleet.producer.devtools.sink import ReceivedMessage, SmtpSink, free_port
from mailfleet.producer.publisher import Producer
from mailfleet.producer.topology import queue_depths, topology_of
from mailfleet.shared.job import EmailJob, Lane
from mailfleet.shared.settings import Settings, load_settings
from mailfleet.worker.mime.build import build_message

HOST = "127.0.0.1"
_DOMAINS = ("example.com", "example.org", "example.net", "mail.test")
_MESG = re.compile(rb"mesg=(\d+)")
_STARTUP_TIMEOUT = 10.0


# --------------------------------------------------------------------------- relay counting


@dataclass(frozen=True)
class PhaseCount:
    """What the relay accepted since the phase began, and when the first and last arrived."""

    received: int
    first_at: float | None
    last_at: float | None

    @property
    def span(self) -> float:
        if self.first_at is None or self.last_at is None:
            return 0.0
        return self.last_at - self.first_at


class Counter:
    """A running total of accepted messages, updated from a reader thread, read per phase."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._total = 0
        self._base = 0
        self._first_at: float | None = None
        self._last_at: float | None = None

    def update(self, total: int, at: float) -> None:
        with self._lock:
            if total <= self._total:
                return
            self._total = total
            if self._first_at is None:
                self._first_at = at
            self._last_at = at

    def start_phase(self) -> None:
        with self._lock:
            self._base = self._total
            self._first_at = None
            self._last_at = None

    def phase(self) -> PhaseCount:
        with self._lock:
            return PhaseCount(self._total - self._base, self._first_at, self._last_at)


class Relay(Protocol):
    label: str
    port: int
    counter: Counter

    @property
    def url(self) -> str: ...

    def cpu(self) -> float | None: ...

    def stop(self) -> None: ...


class SmtpSinkRelay:
    """Postfix's ``smtp-sink -c``: accepts and discards mail, printing ``mesg=N`` counters."""

    def __init__(self, executable: str, backlog: int = 1024) -> None:
        self.port = free_port(HOST)
        self.counter = Counter()
        self.label = f"smtp-sink ({executable})"
        command = [executable, "-c"]
        if os.geteuid() == 0:  # smtp-sink refuses to run as root without -u
            command += ["-u", _unprivileged_user()]
        command += [f"{HOST}:{self.port}", str(backlog)]
        self._process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL
        )
        self._reader = threading.Thread(target=self._read, name="smtp-sink-reader", daemon=True)
        self._reader.start()
        _wait_for_port(self.port, self._process)

    @property
    def url(self) -> str:
        return f"smtp://{HOST}:{self.port}"

    def cpu(self) -> float | None:
        return process_cpu(self._process.pid)

    def _read(self) -> None:
        stream = self._process.stdout
        assert stream is not None
        pending = b""
        while chunk := stream.read1(65536):  # type: ignore[attr-defined]
            now = time.monotonic()
            pending += chunk
            records, _, pending = pending.rpartition(b"\r")
            counts = _MESG.findall(records)
            if counts:
                self.counter.update(int(counts[-1]), now)

    def stop(self) -> None:
        self._process.terminate()
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=5)
        self._reader.join(timeout=2)


class _CountingSink(SmtpSink):
    def __init__(self, counter: Counter) -> None:
        super().__init__(HOST, keep_messages=False)
        self.counter = counter

    def record(self, message: ReceivedMessage) -> None:
        super().record(message)
        self.counter.update(self.count, time.monotonic())


class AiosmtpdRelay:
    """The in-process aiosmtpd sink: slow, so the figures then measure the relay."""

    def __init__(self) -> None:
        self.counter = Counter()
        self._sink = _CountingSink(self.counter).start()
        self.port = self._sink.port
        self.label = "aiosmtpd SmtpSink (in this process)"

    @property
    def url(self) -> str:
        return self._sink.url

    def cpu(self) -> float | None:
        return None  # it shares this process's CPU time

    def stop(self) -> None:
        self._sink.stop()


def _unprivileged_user() -> str:
    for name in ("postfix", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name).pw_name
    raise RuntimeError("smtp-sink runs as root only with -u USER, and no postfix/nobody user")


def _wait_for_port(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + _STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            error = process.stderr.read().decode(errors="replace") if process.stderr else ""
            raise RuntimeError(f"smtp-sink exited with {process.returncode}: {error.strip()}")
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"smtp-sink did not listen on {HOST}:{port} within {_STARTUP_TIMEOUT}s")


def find_smtp_sink() -> str | None:
    if Path("/usr/sbin/smtp-sink").exists():
        return "/usr/sbin/smtp-sink"
    return shutil.which("smtp-sink")


def start_relay(choice: str) -> Relay:
    executable = find_smtp_sink() if choice in {"auto", "smtp-sink"} else None
    if executable is not None:
        return SmtpSinkRelay(executable)
    if choice == "smtp-sink":
        raise SystemExit("--relay smtp-sink: smtp-sink is not installed (Debian package postfix)")
    print(
        "WARNING: smtp-sink not found (Debian package postfix); using the in-process aiosmtpd "
        "sink, which accepts only a few hundred messages/s: the end-to-end figure below "
        "measures that relay, not mailfleet.",
        file=sys.stderr,
    )
    return AiosmtpdRelay()


# --------------------------------------------------------------------------- relay ceiling


@dataclass(frozen=True)
class Ceiling:
    sent: int
    seconds: float
    received: int
    processes: int
    connections: int

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds > 0 else 0.0


def _blast_connection(count: int, payload: bytes, client: smtplib.SMTP) -> None:
    for number in range(count):
        client.sendmail("bench@mailfleet.test", [f"user{number}@example.com"], payload)


def _blast_process(
    port: int,
    count: int,
    connections: int,
    payload: bytes,
    barrier: MpBarrier,
    results: MpQueue[tuple[float, float, int]],
) -> None:
    """One client process: ``connections`` reused SMTP connections, one thread each."""
    clients = []
    for _ in range(connections):
        client = smtplib.SMTP(HOST, port, timeout=30)
        client.ehlo()
        clients.append(client)
    shares = [
        count // connections + (1 if i < count % connections else 0) for i in range(connections)
    ]
    threads = [
        threading.Thread(target=_blast_connection, args=(share, payload, client))
        for share, client in zip(shares, clients, strict=True)
    ]
    barrier.wait(timeout=60)
    started = time.monotonic()  # CLOCK_MONOTONIC: comparable across processes on Linux
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    finished = time.monotonic()
    for client in clients:
        with contextlib.suppress(smtplib.SMTPException, OSError):
            client.quit()
    results.put((started, finished, count))


def measure_ceiling(
    relay: Relay, messages: int, processes: int, connections: int, payload: bytes
) -> Ceiling:
    """Blast ``messages`` at the relay; the rate is messages / (last finish - first start)."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(processes)
    results: MpQueue[tuple[float, float, int]] = context.Queue()
    shares = [
        messages // processes + (1 if i < messages % processes else 0) for i in range(processes)
    ]
    relay.counter.start_phase()
    workers = [
        context.Process(
            target=_blast_process,
            args=(relay.port, share, connections, payload, barrier, results),
            daemon=True,
        )
        for share in shares
    ]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=300) for _ in workers]
    for worker in workers:
        worker.join(timeout=10)
    _settle_counter(relay.counter, messages)
    started = min(outcome[0] for outcome in outcomes)
    finished = max(outcome[1] for outcome in outcomes)
    sent = sum(outcome[2] for outcome in outcomes)
    return Ceiling(sent, finished - started, relay.counter.phase().received, processes, connections)


def _settle_counter(counter: Counter, expected: int, timeout: float = 3.0) -> None:
    """Give the relay's counter output a moment to catch up with the clients."""
    deadline = time.monotonic() + timeout
    while counter.phase().received < expected and time.monotonic() < deadline:
        time.sleep(0.02)


# --------------------------------------------------------------------------- jobs, publishing


def make_jobs(count: int) -> list[EmailJob]:
    """Jobs like the demo's: text + html, one recipient, every fourth on the bulk lane."""
    return [
        EmailJob.model_validate(
            {
                "from": "Mailfleet Bench <bench@mailfleet.test>",
                "to": [f"user{number}@{_DOMAINS[number % len(_DOMAINS)]}"],
                "subject": f"Benchmark email {number + 1} of {count}",
                "text": f"Hello!\n\nThis is benchmark email {number + 1}, sent by mailfleet.\n",
                "html": f"<p>Hello!</p><p>This is benchmark email <b>{number + 1}</b>.</p>",
                "lane": (Lane.BULK if number % 4 == 3 else Lane.TRANSACTIONAL).value,
                "tags": {"campaign": "bench"},
            }
        )
        for number in range(count)
    ]


@dataclass(frozen=True)
class Timed:
    count: int
    seconds: float
    cpu: float  # this process's user + sys seconds over the same interval
    machine: MachineCpu

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else 0.0


def publish(settings: Settings, jobs: list[EmailJob]) -> Timed:
    with Producer(settings) as producer:  # declares the topology first, outside the timing
        machine = MachineMeter()
        cpu = time.process_time()
        started = time.perf_counter()
        ids = producer.publish_many(jobs)
        seconds = time.perf_counter() - started
        cpu = time.process_time() - cpu
    return Timed(len(ids), seconds, cpu, machine.read())


# --------------------------------------------------------------------------- workers


@dataclass(frozen=True)
class WorkerRun:
    seconds: float  # first worker started → last worker exited
    relay: PhaseCount
    exit_codes: list[int | None]
    timed_out: bool
    worker_cpu: float  # user + sys seconds of the worker processes (and any --wrap tool)
    relay_cpu: float | None  # smtp-sink's user + sys seconds over the same interval
    services_cpu: dict[str, float]  # RabbitMQ's and Redis's, whoever else used them meanwhile
    machine: MachineCpu  # the whole machine over the same interval


# --------------------------------------------------------------------------- CPU accounting


@dataclass(frozen=True)
class MachineCpu:
    """Busy share of all CPUs between two readings of /proc/stat (others' work included)."""

    busy: float  # 0..1 of all CPUs
    seconds: float


def _proc_stat() -> tuple[int, int]:
    """(total, idle) jiffies of all CPUs; (0, 0) where /proc/stat does not exist."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return 0, 0
    values = [int(value) for value in fields]
    return sum(values), values[3] + (values[4] if len(values) > 4 else 0)


class MachineMeter:
    def __init__(self) -> None:
        self._total, self._idle = _proc_stat()
        self._started = time.monotonic()

    def read(self) -> MachineCpu:
        total, idle = _proc_stat()
        spent = total - self._total
        busy = 1.0 - (idle - self._idle) / spent if spent > 0 else 0.0
        return MachineCpu(busy, time.monotonic() - self._started)


_SERVICES = {"beam.smp": "RabbitMQ", "redis-server": "Redis"}


def service_pids() -> dict[str, int]:
    """PIDs of the local RabbitMQ and Redis servers, found by name in /proc (Linux)."""
    found: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                name = (entry / "comm").read_text().strip()
                if name in _SERVICES and _SERVICES[name] not in found:
                    found[_SERVICES[name]] = int(entry.name)
    return found


def services_cpu(pids: dict[str, int]) -> dict[str, float]:
    readings = {name: process_cpu(pid) for name, pid in pids.items()}
    return {name: cpu for name, cpu in readings.items() if cpu is not None}


def children_cpu() -> float:
    """User + sys seconds of the children this process has waited for."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def process_cpu(pid: int) -> float | None:
    """User + sys seconds of a running process (Linux /proc), or None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def worker_command() -> list[str]:
    script = Path(sys.executable).with_name("mailfleet")
    if script.exists():
        return [str(script), "worker", "--burst"]
    return [sys.executable, "-m", "mailfleet.shared.cli", "worker", "--burst"]


def worker_env(
    namespace: str, relay_url: str, concurrency: int, prefetch: int | None
) -> dict[str, str]:
    env = {
        **os.environ,
        "MAILFLEET_NAMESPACE": namespace,
        "MAILFLEET_SMTP_RELAYS": relay_url,
        "MAILFLEET_METRICS_PORT": "0",
        "MAILFLEET_LOG_LEVEL": "WARNING",
        "MAILFLEET_CONCURRENCY": str(concurrency),
    }
    if prefetch is not None:
        env["MAILFLEET_PREFETCH"] = str(prefetch)
    return env


def run_workers(
    relay: Relay,
    *,
    count: int,
    env: dict[str, str],
    expected: int,
    wrap: list[str],
    logs: Path,
) -> WorkerRun:
    """Start ``count`` burst workers; wait (bounded) until every one has exited."""
    timeout = 60.0 + expected * 0.02
    relay.counter.start_phase()
    cpu_before = children_cpu()
    relay_before = relay.cpu()
    pids = service_pids()
    services_before = services_cpu(pids)
    machine = MachineMeter()
    processes: list[subprocess.Popen[bytes]] = []
    log_files: list[IO[bytes]] = []
    started = time.monotonic()
    for number in range(count):
        log_file = (logs / f"worker-{number}.log").open("wb")
        log_files.append(log_file)
        command = [part.replace("{n}", str(number)) for part in wrap] + worker_command()
        processes.append(
            subprocess.Popen(command, env=env, stdout=log_file, stderr=subprocess.STDOUT)
        )
    deadline = started + timeout
    timed_out = False
    while any(process.poll() is None for process in processes):
        if time.monotonic() > deadline:
            timed_out = True
            break
        time.sleep(0.01)
    finished = time.monotonic()
    machine_cpu = machine.read()
    relay_after = relay.cpu()
    services_after = services_cpu(pids)
    if timed_out:
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=30)
    for opened in log_files:
        opened.close()
    _settle_counter(relay.counter, expected, timeout=1.0)
    return WorkerRun(
        seconds=finished - started,
        relay=relay.counter.phase(),
        exit_codes=[p.poll() for p in processes],
        timed_out=timed_out,
        worker_cpu=children_cpu() - cpu_before,
        relay_cpu=None
        if relay_before is None or relay_after is None
        else relay_after - relay_before,
        services_cpu={
            name: services_after[name] - before
            for name, before in services_before.items()
            if name in services_after
        },
        machine=machine_cpu,
    )


# --------------------------------------------------------------------------- clean-up


def clean_up(settings: Settings) -> dict[str, int]:
    """Read the dead-letter and lane queue depths, then delete the namespace everywhere."""
    connection = open_connection(settings)
    try:
        depths = queue_depths(connection, topology_of(settings))
    finally:
        connection.release()
    remove_namespace(settings)
    return {name: ready for name, (ready, _) in depths.items()}


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--jobs", type=int, default=20000, help="jobs to publish (20000)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (2)")
    parser.add_argument("--concurrency", type=int, default=8, help="sender threads each (8)")
    parser.add_argument("--prefetch", type=int, help="MAILFLEET_PREFETCH (worker default)")
    parser.add_argument("--publish-only", action="store_true", help="only time publish_many")
    parser.add_argument(
        "--relay", choices=["auto", "smtp-sink", "aiosmtpd"], default="auto", help="(auto)"
    )
    parser.add_argument("--ceiling-messages", type=int, default=6000, help="(6000)")
    parser.add_argument("--ceiling-processes", type=int, default=2, help="(2)")
    parser.add_argument("--ceiling-connections", type=int, default=4, help="per process (4)")
    parser.add_argument(
        "--wrap",
        default="",
        help="prefix for each worker command, '{n}' = worker number, e.g. "
        "'py-spy record -r 250 -o /tmp/w{n}.svg --'",
    )
    parser.add_argument("--logs", type=Path, help="keep worker output here (default: temp dir)")
    args = parser.parse_args(argv)
    for name in ("jobs", "workers", "concurrency", "ceiling_messages", "ceiling_processes"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


@dataclass
class Report:
    jobs: int
    publish: Timed | None = None
    ceiling: Ceiling | None = None
    workers: WorkerRun | None = None
    depths: dict[str, int] | None = None
    relay_label: str = ""


def _ms_per(seconds: float, count: int) -> str:
    return f"{seconds / count * 1000:.3f} ms" if count else "-"


def _publish_rows(timed: Timed) -> list[tuple[str, str]]:
    return [
        (
            "publish_many (confirms)",
            f"{timed.rate:8.0f} msgs/s  ({timed.count} in {timed.seconds:.2f}s; target >= 5000)",
        ),
        (
            "  publisher CPU",
            f"{_ms_per(timed.cpu, timed.count)} per message; machine CPU busy "
            f"{timed.machine.busy:.0%} meanwhile (broker + publisher + anything else)",
        ),
    ]


def _worker_rows(
    run: WorkerRun, jobs: int, dead: int, args: argparse.Namespace
) -> list[tuple[str, str]]:
    received = run.relay.received
    rows = [
        (
            "end-to-end (wall)",
            f"{received / run.seconds:8.0f} sends/s  ({received} in {run.seconds:.2f}s: "
            f"{args.workers} workers x {args.concurrency} threads, start to last exit; "
            "target >= 1300)",
        )
    ]
    if run.relay.span > 0:
        rows.append(
            (
                "end-to-end (at relay)",
                f"{received / run.relay.span:8.0f} sends/s  (first to last message accepted, "
                f"{run.relay.span:.2f}s: without start-up and burst exit)",
            )
        )
    rows.append(
        (
            "  worker CPU",
            f"{_ms_per(run.worker_cpu, received)} per message (user+sys of all workers); "
            f"machine CPU busy {run.machine.busy:.0%} meanwhile",
        )
    )
    if run.relay_cpu is not None:
        rows.append(("  relay CPU", f"{_ms_per(run.relay_cpu, received)} per message"))
    for name, cpu in run.services_cpu.items():
        rows.append(
            (
                f"  {name} CPU",
                f"{_ms_per(cpu, received)} per message (the whole server: others' use included)",
            )
        )
    missing = jobs - received
    rows.append(
        (
            "delivered vs published",
            f"{received} / {jobs}  (missing {max(0, missing)}, extra {max(0, -missing)}, "
            f"dead letters {dead})",
        )
    )
    if run.timed_out:
        rows.append(("workers", "TIMED OUT and were terminated"))
    if any(code != 0 for code in run.exit_codes):
        rows.append(("worker exit codes", ", ".join(str(c) for c in run.exit_codes)))
    return rows


def print_report(report: Report, settings: Settings, args: argparse.Namespace) -> int:
    rows: list[tuple[str, str]] = []
    status = 0
    if report.publish is not None:
        rows += _publish_rows(report.publish)
    if report.workers is not None:
        run = report.workers
        dead = (report.depths or {}).get(settings.names.dead_queue, 0)
        rows += _worker_rows(run, report.jobs, dead, args)
        failed = run.timed_out or any(code != 0 for code in run.exit_codes)
        if failed or dead or run.relay.received != report.jobs:
            status = 1
    if report.ceiling is not None:
        ceiling = report.ceiling
        rows.append(
            (
                "relay ceiling",
                f"{ceiling.rate:8.0f} msgs/s  (smtplib from {ceiling.processes} processes x "
                f"{ceiling.connections} connections; {ceiling.sent} sent, relay counted "
                f"{ceiling.received})",
            )
        )
    if report.relay_label:
        rows.append(("relay", report.relay_label))
    width = max(len(name) for name, _ in rows)
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print()
    print(
        f"mailfleet throughput: namespace {settings.namespace}, {os.cpu_count()} CPUs, "
        f"load average {load}"
    )
    print("-" * (width + 80))
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    print("-" * (width + 80))
    return status


@contextlib.contextmanager
def log_dir(path: Path | None, prefix: str = "mailfleet-bench-") -> Iterator[Path]:
    """``path`` (created), or a temporary directory removed afterwards: where logs go."""
    if path is not None:
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    with tempfile.TemporaryDirectory(prefix=prefix) as directory:
        yield Path(directory)


class _Relayless:
    """Stands in for a relay in ``--publish-only`` mode (nothing listens)."""

    label = ""
    port = 0
    counter = Counter()
    url = f"smtp://{HOST}:1"

    def cpu(self) -> float | None:
        return None

    def stop(self) -> None:
        return None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    namespace = f"bench-{uuid.uuid4().hex[:8]}"
    settings = load_settings(namespace=namespace)
    report = Report(jobs=args.jobs)
    relay: Relay = _Relayless() if args.publish_only else start_relay(args.relay)
    report.relay_label = relay.label
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print(
        f"namespace {namespace}, relay {relay.label or '-'} {relay.url}; "
        f"load average before: {load}",
        flush=True,
    )
    try:
        jobs = make_jobs(args.jobs)
        if not args.publish_only:
            payload = build_message(jobs[0])
            print(
                f"relay ceiling: {args.ceiling_messages} messages of {len(payload)} bytes ...",
                flush=True,
            )
            report.ceiling = measure_ceiling(
                relay,
                args.ceiling_messages,
                args.ceiling_processes,
                args.ceiling_connections,
                payload,
            )
        print(f"publishing {args.jobs} jobs with confirms ...", flush=True)
        report.publish = publish(settings, jobs)
        del jobs
        if not args.publish_only:
            print(f"draining with {args.workers} burst worker(s) ...", flush=True)
            env = worker_env(namespace, relay.url, args.concurrency, args.prefetch)
            with log_dir(args.logs) as logs:
                report.workers = run_workers(
                    relay,
                    count=args.workers,
                    env=env,
                    expected=args.jobs,
                    wrap=args.wrap.split(),
                    logs=logs,
                )
                if report.workers.timed_out or any(report.workers.exit_codes):
                    for log in sorted(logs.glob("worker-*.log")):
                        print(f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}")
    finally:
        relay.stop()
        report.depths = clean_up(settings)
    return print_report(report, settings, args)


if __name__ == "__main__":
    sys.exit(main())
