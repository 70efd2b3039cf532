"""Peer benchmark: one workload through Dramatiq and through mailfleet, interleaved, in one run.

Run from the repository root (RabbitMQ and Redis on localhost, Postfix's ``smtp-sink``
installed); ``make bench-peers`` installs the ``bench`` extra (Dramatiq) first::

    .venv/bin/python tests/benchmarks/bench_peers.py     # = --n 10000 --rounds 3
    .venv/bin/python tests/benchmarks/bench_peers.py --n 2000 --rounds 1 --processes 2 --threads 8

Rounds run Dramatiq, then mailfleet, then Dramatiq again ... so that both see the machine in
the same state; only the ratios taken within one run mean anything. Each contender's run:

1. a fresh relay, ``smtp-sink`` on a free loopback port (counting only), or with
   ``--relay aiosmtpd`` an in-process sink that records every message's id (exact ledgers,
   but a slow relay: its figures measure the sink, not the contenders);
2. ``--n`` jobs of about 2 KB of plain text, one recipient each, unique ids, written as
   JSON lines; the same file format for both;
3. publish, timed as the publishing command's wall time, interpreter start included:
   Dramatiq: ``peers_dramatiq_app.py publish`` (``actor.send`` per job, Dramatiq's default
   of no publisher confirms unless ``--dramatiq-confirms``); mailfleet: ``mailfleet publish``
   (validated, publisher confirms) after an untimed ``mailfleet declare``;
4. workers: ``dramatiq -p P -t T`` (the actor builds the message with ``email.mime`` and sends
   it with ``smtplib``, one kept-open connection per thread), or P ``mailfleet worker
   --concurrency T`` processes; timed from their start until the relay has counted every
   published message, then ``--settle`` seconds more to see late duplicates; then SIGTERM;
5. what is left in the queues, then the round's queues (and mailfleet's Redis keys) go.

No figure is asserted; the exit status is 1 only when a message was lost.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Protocol

import pika
import pika.exceptions
from bench_throughput import (
    HOST,
    Counter,
    PhaseCount,
    Relay,
    SmtpSinkRelay,
    find_smtp_sink,
    log_dir,
)

from mailfleet.producer.connection import open_connection
from mailfleet.producer.devtools.namespace import remove_namespace
from mailfleet.producer.devtools.sink import ReceivedMessage, SmtpSink
from mailfleet.producer.topology import queue_depths, topology_of
from mailfleet.shared.names import JOB_ID_HEADER
from mailfleet.shared.settings import load_settings

HERE = Path(__file__).resolve().parent
DRAMATIQ_APP = HERE / "peers_dramatiq_app.py"
CONTENDERS = ("dramatiq", "mailfleet")
BODY_BYTES = 2048
_DOMAINS = ("example.com", "example.org", "example.net")
_PROSE = (
    "the quarterly report is attached below please review the figures before friday and "
    "send any corrections to the finance team so that we can close the books on time"
)
_WORDS = _PROSE.split()


# --------------------------------------------------------------------------- workload


def body(number: int) -> str:
    """About ``BODY_BYTES`` of ASCII text in lines of at most 72 characters, varied per job."""
    lines = [f"Dear user {number},", ""]
    size = sum(len(line) + 1 for line in lines)
    offset = number
    while size < BODY_BYTES - 60:
        words: list[str] = []
        while sum(len(word) + 1 for word in words) < 60:
            words.append(_WORDS[offset % len(_WORDS)])
            offset += 5
        line = " ".join(words)
        lines.append(line)
        size += len(line) + 1
    lines += ["", f"Kind regards, message {number}."]
    return "\n".join(lines) + "\n"


def write_jobs(path: Path, count: int, prefix: str) -> list[str]:
    """``count`` mailfleet JSON jobs, one per line; the Dramatiq actor takes the same dicts."""
    ids = []
    with path.open("w") as out:
        for number in range(count):
            job_id = f"{prefix}-{number}"
            job = {
                "id": job_id,
                "from": "bench@peers.test",
                "to": [f"user{number}@{_DOMAINS[number % len(_DOMAINS)]}"],
                "subject": f"Peer benchmark email {number + 1} of {count}",
                "text": body(number),
            }
            out.write(json.dumps(job, separators=(",", ":")) + "\n")
            ids.append(job_id)
    return ids


# --------------------------------------------------------------------------- relays


def _job_id(data: bytes) -> str:
    """The id header's value, found in the header block without parsing the message."""
    head = b"\n" + data.split(b"\r\n\r\n", 1)[0]
    name = b"\n" + JOB_ID_HEADER.lower().encode() + b":"
    start = head.lower().find(name)
    if start < 0:
        return ""
    value = head[start + len(name) :].split(b"\n", 1)[0]
    return value.strip().decode("ascii", "replace")


class _LedgerSink(SmtpSink):
    def __init__(self, counter: Counter) -> None:
        super().__init__(HOST, keep_messages=False)
        self.counter = counter
        self.ids: collections.Counter[str] = collections.Counter()

    def record(self, message: ReceivedMessage) -> None:
        super().record(message)
        self.ids[_job_id(message.data)] += 1  # aiosmtpd's one event-loop thread calls this
        self.counter.update(self.count, time.monotonic())


class LedgerRelay:
    """The in-process aiosmtpd sink, keeping how often each id arrived."""

    def __init__(self) -> None:
        self.counter = Counter()
        self._sink = _LedgerSink(self.counter)
        self._sink.start()
        self.port = self._sink.port
        self.label = "aiosmtpd ledger sink (in this process; slow: it measures itself)"

    @property
    def url(self) -> str:
        return self._sink.url

    @property
    def ids(self) -> collections.Counter[str]:
        return self._sink.ids

    def cpu(self) -> float | None:
        return None

    def stop(self) -> None:
        self._sink.stop()


def start_relay(choice: str) -> Relay:
    if choice == "aiosmtpd":
        return LedgerRelay()
    executable = find_smtp_sink()
    if executable is None:
        raise SystemExit(
            "smtp-sink is not installed (Debian package postfix); "
            "--relay aiosmtpd works without it but measures that relay, not the contenders"
        )
    return SmtpSinkRelay(executable)


# --------------------------------------------------------------------------- processes


def start(command: list[str], env: dict[str, str], log: IO[bytes]) -> subprocess.Popen[bytes]:
    """A process in a session of its own, so that it and its children can be stopped."""
    return subprocess.Popen(
        command,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )


def stop(processes: list[subprocess.Popen[bytes]], timeout: float) -> list[int | None]:
    """SIGTERM each; SIGKILL the process group of any still running after ``timeout``."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + timeout
    for process in processes:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    return [process.returncode for process in processes]


def run_command(command: list[str], env: dict[str, str]) -> tuple[str, float]:
    """Run to completion; its stdout and wall time. Raise with its output when it fails."""
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} exited with {done.returncode}:\n{done.stdout}{done.stderr}"
        )
    return done.stdout, seconds


def published_count(output: str) -> int:
    """N from the ``published N`` line both publishers print."""
    for line in output.splitlines():
        if line.startswith("published "):
            return int(line.split()[1])
    raise RuntimeError(f"no 'published N' line in: {output!r}")


def mailfleet_command() -> list[str]:
    script = Path(sys.executable).with_name("mailfleet")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "mailfleet.shared.cli"]


# --------------------------------------------------------------------------- contenders


class Side(Protocol):
    """One contender in one round: its queues exist only for this round."""

    def publish(self, jobs: Path) -> tuple[int, float]: ...

    def start_workers(self, log: IO[bytes]) -> list[subprocess.Popen[bytes]]: ...

    def left_in_queues(self) -> int: ...

    def clean_up(self) -> None: ...


class DramatiqSide:
    def __init__(self, args: argparse.Namespace, relay: Relay, tag: str) -> None:
        self.args = args
        self.queue = f"bench_peers_{tag}"
        self.amqp_url = load_settings().amqp_url.get_secret_value()
        self.env = {
            **os.environ,
            "BENCH_PEERS_AMQP_URL": self.amqp_url,
            "BENCH_PEERS_QUEUE": self.queue,
            "BENCH_PEERS_SMTP_HOST": HOST,
            "BENCH_PEERS_SMTP_PORT": str(relay.port),
            "BENCH_PEERS_CONFIRMS": "1" if args.dramatiq_confirms else "0",
        }

    @property
    def _queues(self) -> list[str]:
        return [self.queue, f"{self.queue}.DQ", f"{self.queue}.XQ"]

    def publish(self, jobs: Path) -> tuple[int, float]:
        output, seconds = run_command(
            [sys.executable, str(DRAMATIQ_APP), "publish", str(jobs)], self.env
        )
        return published_count(output), seconds

    def start_workers(self, log: IO[bytes]) -> list[subprocess.Popen[bytes]]:
        command = [sys.executable, "-m", "dramatiq", DRAMATIQ_APP.stem, "--path", str(HERE)]
        command += ["-p", str(self.args.processes), "-t", str(self.args.threads)]
        return [start(command, self.env, log)]

    def _on_queues(
        self, action: Callable[[pika.adapters.blocking_connection.BlockingChannel, str], int]
    ) -> int:
        total = 0
        connection = pika.BlockingConnection(pika.URLParameters(self.amqp_url))
        try:
            for queue in self._queues:
                channel = connection.channel()  # a missing queue closes its channel
                with contextlib.suppress(pika.exceptions.ChannelClosedByBroker):
                    total += action(channel, queue)
                if channel.is_open:
                    channel.close()
        finally:
            connection.close()
        return total

    def left_in_queues(self) -> int:
        def depth(channel: pika.adapters.blocking_connection.BlockingChannel, queue: str) -> int:
            return channel.queue_declare(queue, passive=True).method.message_count or 0

        return self._on_queues(depth)

    def clean_up(self) -> None:
        def delete(channel: pika.adapters.blocking_connection.BlockingChannel, queue: str) -> int:
            channel.queue_delete(queue)
            return 0

        self._on_queues(delete)


class MailfleetSide:
    def __init__(self, args: argparse.Namespace, relay: Relay, tag: str) -> None:
        self.args = args
        self.settings = load_settings(namespace=f"peers-{tag}")
        self.env = {
            **os.environ,  # MAILFLEET_RATE_LIMIT and the like pass through
            "MAILFLEET_NAMESPACE": self.settings.namespace,
            "MAILFLEET_SMTP_RELAYS": relay.url,
            "MAILFLEET_METRICS_PORT": "0",
            "MAILFLEET_LOG_LEVEL": os.environ.get("MAILFLEET_LOG_LEVEL", "WARNING"),
        }

    def publish(self, jobs: Path) -> tuple[int, float]:
        run_command([*mailfleet_command(), "declare"], self.env)
        output, seconds = run_command([*mailfleet_command(), "publish", str(jobs)], self.env)
        return published_count(output), seconds

    def start_workers(self, log: IO[bytes]) -> list[subprocess.Popen[bytes]]:
        command = [*mailfleet_command(), "worker", "--concurrency", str(self.args.threads)]
        if self.args.mailfleet_processes_flag:
            return [start([*command, "--processes", str(self.args.processes)], self.env, log)]
        return [start(command, self.env, log) for _ in range(self.args.processes)]

    def left_in_queues(self) -> int:
        connection = open_connection(self.settings)
        try:
            depths = queue_depths(connection, topology_of(self.settings))
        finally:
            connection.release()
        return sum(ready for ready, _ in depths.values())

    def clean_up(self) -> None:
        remove_namespace(self.settings)


SIDES: dict[str, Callable[[argparse.Namespace, Relay, str], Side]] = {
    "dramatiq": DramatiqSide,
    "mailfleet": MailfleetSide,
}


# --------------------------------------------------------------------------- one run


@dataclass
class Run:
    contender: str
    round: int
    expected: list[str]
    published: int = 0
    publish_seconds: float = 0.0
    started: float = 0.0  # time.monotonic() when the first worker process was started
    complete: PhaseCount | None = None  # the relay's count when every published one arrived
    final: PhaseCount = field(default_factory=lambda: PhaseCount(0, None, None))
    left: int = 0
    ids: collections.Counter[str] | None = None  # with --relay aiosmtpd
    exit_codes: list[int | None] = field(default_factory=list)

    @property
    def arrived(self) -> int:
        return self.final.received

    @property
    def lost(self) -> int:
        if self.ids is not None:
            return len(set(self.expected) - set(self.ids))
        return max(0, self.published - self.arrived)

    @property
    def duplicates(self) -> int:
        if self.ids is not None:
            return sum(count - 1 for count in self.ids.values() if count > 1)
        return max(0, self.arrived - self.published)

    @property
    def _until(self) -> PhaseCount:
        return self.complete or self.final

    @property
    def drain(self) -> float | None:
        """Messages / first → last arrival (until all had arrived)."""
        until = self._until
        return until.received / until.span if until.span > 0 else None

    @property
    def end_to_end(self) -> float | None:
        """Messages / workers started → the last arrival."""
        until = self._until
        if until.last_at is None or until.last_at <= self.started:
            return None
        return until.received / (until.last_at - self.started)

    @property
    def publish_rate(self) -> float | None:
        return self.published / self.publish_seconds if self.publish_seconds > 0 else None

    @property
    def first_arrival(self) -> float | None:
        """Seconds from the workers' start to the first arrival."""
        return None if self.final.first_at is None else self.final.first_at - self.started


def wait_for(
    relay: Relay, target: int, processes: list[subprocess.Popen[bytes]], args: argparse.Namespace
) -> PhaseCount | None:
    """The relay's count once ``target`` arrived; None on a stall, timeout or dead workers."""
    started = last_change = time.monotonic()
    last = 0
    while True:
        phase = relay.counter.phase()
        if phase.received >= target:
            return phase
        now = time.monotonic()
        if phase.received != last:
            last, last_change = phase.received, now
        if now - last_change > args.stall or now - started > args.timeout:
            return None
        if all(process.poll() is not None for process in processes):
            return None
        time.sleep(0.01)


def run_one(name: str, number: int, args: argparse.Namespace, logs: Path) -> Run:
    tag = uuid.uuid4().hex[:8]
    relay = start_relay(args.relay)
    jobs = logs / f"{name}-{number}.jsonl"
    run = Run(name, number, write_jobs(jobs, args.n, f"{name[:2]}{number}-{tag}"))
    side = SIDES[name](args, relay, tag)
    processes: list[subprocess.Popen[bytes]] = []
    log_path = logs / f"{name}-{number}.log"
    try:
        with log_path.open("wb") as log:
            run.published, run.publish_seconds = side.publish(jobs)
            relay.counter.start_phase()
            run.started = time.monotonic()
            processes = side.start_workers(log)
            run.complete = wait_for(relay, run.published, processes, args)
            if run.complete is not None:
                time.sleep(args.settle)
            run.final = relay.counter.phase()
            run.exit_codes = stop(processes, args.stop_timeout)
        run.left = side.left_in_queues()
    finally:
        with contextlib.suppress(Exception):
            stop(processes, args.stop_timeout)
        relay.stop()
        side.clean_up()
        jobs.unlink(missing_ok=True)
    if isinstance(relay, LedgerRelay):
        run.ids = relay.ids
    if run.complete is None:
        print(f"--- {name} round {number} did not complete; the end of {log_path.name}:")
        print(log_path.read_text(errors="replace")[-3000:])
    return run


# --------------------------------------------------------------------------- report


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _ratio(ours: float | None, theirs: float | None) -> float | None:
    return None if ours is None or not theirs else ours / theirs


# (label, how a run yields the figure, how it is shown)
FIGURES: list[tuple[str, Callable[[Run], float | None], Callable[[float | None], str]]] = [
    ("drain sends/s (first to last arrival)", lambda r: r.drain, _rate),
    ("end-to-end sends/s (workers started to last)", lambda r: r.end_to_end, _rate),
    ("publish msgs/s (command wall time)", lambda r: r.publish_rate, _rate),
    ("worker start to first arrival, s", lambda r: r.first_arrival, _seconds),
]


def print_table(rows: list[list[str]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for index, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        print("  ".join(cells).rstrip())
        if index == 0:
            print("  ".join("-" * width for width in widths))


def print_round(dramatiq: Run, mailfleet: Run, args: argparse.Namespace) -> None:
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    print()
    print(f"round {dramatiq.round} of {args.rounds}: load average now {load}")
    rows = [["figure", "dramatiq", "mailfleet", "mailfleet/dramatiq"]]
    for label, figure, shown in FIGURES:
        ratio = _ratio(figure(mailfleet), figure(dramatiq))
        rows.append([label, shown(figure(dramatiq)), shown(figure(mailfleet)), _seconds(ratio)])
    rows.append(
        ["arrived / published", *(f"{r.arrived}/{r.published}" for r in (dramatiq, mailfleet)), ""]
    )
    rows.append(
        ["lost / duplicates", *(f"{r.lost} / {r.duplicates}" for r in (dramatiq, mailfleet)), ""]
    )
    rows.append(["left in queues after stop", *(str(r.left) for r in (dramatiq, mailfleet)), ""])
    print_table(rows)


def _span(values: list[float | None], shown: Callable[[float | None], str]) -> str:
    known = [value for value in values if value is not None]
    if not known:
        return "-"
    low, high = shown(min(known)), shown(max(known))
    return low if low == high else f"{low}-{high}"


def print_overall(runs: list[Run], args: argparse.Namespace) -> None:
    by_name = {name: [run for run in runs if run.contender == name] for name in CONTENDERS}
    pairs = list(zip(by_name["dramatiq"], by_name["mailfleet"], strict=True))
    print()
    print(f"overall, {len(pairs)} round(s), min-max: only these same-run ratios mean anything")
    rows = [["figure", "dramatiq", "mailfleet", "mailfleet/dramatiq"]]
    for label, figure, shown in FIGURES:
        ratios = [_ratio(figure(ours), figure(theirs)) for theirs, ours in pairs]
        rows.append(
            [
                label,
                _span([figure(run) for run in by_name["dramatiq"]], shown),
                _span([figure(run) for run in by_name["mailfleet"]], shown),
                _span(ratios, _seconds),
            ]
        )
    rows.append(
        [
            "lost / duplicates, all rounds",
            *(
                f"{sum(r.lost for r in by_name[n])} / {sum(r.duplicates for r in by_name[n])}"
                for n in CONTENDERS
            ),
            "",
        ]
    )
    print_table(rows)
    if args.relay == "smtp-sink":
        print(
            "lost = published - arrived, duplicates = arrived - published: smtp-sink counts "
            "but keeps no ids (--relay aiosmtpd keeps per-id ledgers)"
        )


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--n", type=int, default=10000, help="emails per contender and round (10000)"
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds, each contender once (3)")
    parser.add_argument(
        "--processes", type=int, default=2, help="worker processes per contender (2)"
    )
    parser.add_argument("--threads", type=int, default=8, help="threads per process (8)")
    parser.add_argument(
        "--relay",
        choices=["smtp-sink", "aiosmtpd"],
        default="smtp-sink",
        help="smtp-sink counts (default); aiosmtpd keeps per-id ledgers but is slow",
    )
    parser.add_argument(
        "--mailfleet-processes-flag",
        action="store_true",
        help="one 'mailfleet worker --processes P' instead of P separate worker processes",
    )
    parser.add_argument(
        "--dramatiq-confirms",
        action="store_true",
        help="RabbitmqBroker(confirm_delivery=True); Dramatiq's default is without confirms",
    )
    parser.add_argument(
        "--settle", type=float, default=2.0, help="s to wait for late duplicates (2)"
    )
    parser.add_argument(
        "--stall", type=float, default=60.0, help="give up after s without arrivals (60)"
    )
    parser.add_argument("--timeout", type=float, help="give up on a run after s (60 + n / 50)")
    parser.add_argument(
        "--stop-timeout", type=float, default=30.0, help="s from SIGTERM to SIGKILL (30)"
    )
    parser.add_argument(
        "--logs", type=Path, help="keep job files and worker output here (temp dir)"
    )
    args = parser.parse_args(argv)
    for name in ("n", "rounds", "processes", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.timeout is None:
        args.timeout = 60.0 + args.n / 50
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    print(
        f"peers: n={args.n}, {args.rounds} round(s), {args.processes} processes x "
        f"{args.threads} threads each, relay {args.relay}; {os.cpu_count()} CPUs, "
        f"load average {load}",
        flush=True,
    )
    runs: list[Run] = []
    with log_dir(args.logs, "mailfleet-peers-") as logs:
        for number in range(1, args.rounds + 1):
            for name in CONTENDERS:
                run = run_one(name, number, args, logs)
                print(
                    f"{name} round {number}: {run.arrived}/{run.published} arrived, "
                    f"drain {_rate(run.drain)} sends/s, end-to-end {_rate(run.end_to_end)}",
                    flush=True,
                )
                runs.append(run)
            print_round(runs[-2], runs[-1], args)
    print_overall(runs, args)
    return 1 if any(run.lost for run in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
