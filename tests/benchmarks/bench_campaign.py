"""Campaign-publish benchmark: a recipient CSV to broker-confirmed jobs with ``mailfleet
campaign send``, in jobs/s and peak memory, at two list sizes to show memory stays flat.

Run from the repository root (RabbitMQ and Redis on localhost)::

    .venv/bin/python tests/benchmarks/bench_campaign.py            # = --rows 10000,100000

For each size, in a fresh namespace ``bench-camp-<hex>`` (removed at the end): a CSV of that
many rows (email, name, two variables) is written to a temporary directory, a template is
stored, and ``mailfleet campaign send`` runs as a child process. Timed from its start to its
exit (Python's start-up, the check pass that renders every row, and the confirmed publishing
all included); its peak RSS comes from ``wait4``'s rusage. The same command with
``--dry-run`` (the check pass alone) is timed too, to split the two passes. Then the bulk lane's
depth is read to confirm that every job is there. The machine is shared, so each size runs
``--repeat`` times (3) and every run is printed, with the command's CPU seconds beside its
wall-clock time: the CPU figure moves much less with the load. No figure is asserted; the
exit status is 1 when the lane does not hold every row.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from mailfleet.producer.connection import open_connection
from mailfleet.producer.devtools.namespace import remove_namespace
from mailfleet.producer.topology import declare, queue_depths, topology_of
from mailfleet.shared.redis_client import make_redis
from mailfleet.shared.settings import Settings, load_settings
from mailfleet.shared.template_ref import TemplateSource
from mailfleet.shared.templates.store import TemplateStore

TEMPLATE = TemplateSource(
    subject="{{ name }}, your {{ plan }} plan renews soon",
    text="Hello {{ name }},\n\nYour {{ plan }} plan renews on {{ renews }}.\n",
    html="<p>Hello {{ name }},</p><p>Your <b>{{ plan }}</b> plan renews on {{ renews }}.</p>",
)


@dataclass(frozen=True)
class Run:
    seconds: float
    cpu_seconds: float  # the child's user + system time
    peak_rss_mib: float
    returncode: int
    stdout: str


def write_csv(path: Path, rows: int) -> None:
    with path.open("w", newline="") as target:
        writer = csv.writer(target)
        writer.writerow(["email", "name", "plan", "renews"])
        for n in range(rows):
            writer.writerow([f"user{n}@example.org", f"User {n}", "pro", "2027-01-01"])


def timed(command: list[str], env: dict[str, str]) -> Run:
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    stdout = process.stdout.read().decode()
    process.returncode = os.waitstatus_to_exitcode(status)
    cpu = usage.ru_utime + usage.ru_stime
    return Run(seconds, cpu, usage.ru_maxrss / 1024, process.returncode, stdout.strip())


def one_size(rows: int, workdir: Path) -> tuple[Run, Run, int]:
    namespace = f"bench-camp-{uuid.uuid4().hex[:8]}"
    settings: Settings = load_settings(namespace=namespace)
    env = {**os.environ, "MAILFLEET_NAMESPACE": namespace, "MAILFLEET_LOG_LEVEL": "WARNING"}
    path = workdir / f"rows-{rows}.csv"
    write_csv(path, rows)
    client = make_redis(settings)
    connection = open_connection(settings)
    try:
        declare(connection, topology_of(settings))
        TemplateStore(client, settings.names).put("renewal", TEMPLATE)
        script = Path(sys.executable).with_name("mailfleet")
        command = [
            str(script),
            "campaign",
            "send",
            "--template",
            "renewal",
            "--recipients",
            str(path),
            "--from",
            "Billing <billing@example.com>",
            "--id",
            "bench",
        ]
        check = timed([*command, "--dry-run"], env)
        publish = timed(command, env)
        depth = queue_depths(connection, topology_of(settings))[f"{namespace}.bulk"][0]
    finally:
        connection.release()
        client.close()
        remove_namespace(settings)
    return check, publish, depth


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rows", default="10000,100000", help="list sizes (10000,100000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per size (3)")
    args = parser.parse_args()
    sizes = [int(size) for size in args.rows.split(",")]
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"campaign-publish benchmark, load average {load}", flush=True)
    print(
        f"{'rows':>8} {'check s':>8} {'send s':>8} {'jobs/s':>8} {'send CPU s':>11} "
        f"{'jobs/CPU s':>11} {'check RSS MiB':>14} {'send RSS MiB':>13} {'in lane':>8}"
    )
    failed = False
    with tempfile.TemporaryDirectory(prefix="mailfleet-bench-campaign-") as workdir:
        for rows in sizes:
            for _ in range(args.repeat):
                check, publish, depth = one_size(rows, Path(workdir))
                print(
                    f"{rows:>8} {check.seconds:>8.2f} {publish.seconds:>8.2f} "
                    f"{rows / publish.seconds:>8.0f} {publish.cpu_seconds:>11.2f} "
                    f"{rows / publish.cpu_seconds:>11.0f} {check.peak_rss_mib:>14.1f} "
                    f"{publish.peak_rss_mib:>13.1f} {depth:>8}",
                    flush=True,
                )
                failed |= publish.returncode != 0 or depth != rows
        print(f"last: {publish.stdout}")
        load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
        print(f"load average at the end {load}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
