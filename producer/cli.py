"""Producer-side subcommands: ``publish``, ``declare``, ``sink``, ``demo``."""

from __future__ import annotations

import argparse
import sys
import time
from importlib.util import find_spec
from pathlib import Path

from mailfleet.shared.cli import EXIT_OK, EXIT_USAGE, Subparsers
from mailfleet.shared.errors import MailfleetError
from mailfleet.shared.settings import Settings


def register(subparsers: Subparsers) -> None:
    publish = subparsers.add_parser(
        "publish", help="publish email jobs from JSON lines (validated first, all or nothing)"
    )
    publish.add_argument("file", nargs="?", default="-", help="JSON-lines file, or - for stdin")
    publish.set_defaults(handler=run_publish)

    declare_cmd = subparsers.add_parser("declare", help="declare exchanges and queues (idempotent)")
    declare_cmd.set_defaults(handler=run_declare)

    sink = subparsers.add_parser("sink", help="run a local SMTP sink that accepts and counts mail")
    sink.add_argument("--host", default="127.0.0.1")
    sink.add_argument("--port", type=int, default=1025)
    sink.add_argument("--maildir", type=Path, help="also store every message in this Maildir")
    sink.set_defaults(handler=run_sink)

    demo = subparsers.add_parser("demo", help="run sink, workers and a producer end to end")
    demo.add_argument("--emails", type=int, default=1000, help="how many emails (default 1000)")
    demo.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    demo.add_argument(
        "--own-servers",
        action="store_true",
        help="always run throwaway RabbitMQ and Redis (default: only when nothing answers "
        "at the default URLs)",
    )
    demo.add_argument(
        "--dashboard",
        action="store_true",
        help="also open `mailfleet dashboard` on the demo's namespace while it runs",
    )
    demo.add_argument(
        "--dashboard-port", type=int, default=8025, help="the dashboard's port (default 8025)"
    )
    demo.set_defaults(handler=run_demo)


# The handlers import what they use, so registering the commands stays cheap.
# ruff: noqa: PLC0415


def run_publish(args: argparse.Namespace, settings: Settings) -> int:
    from mailfleet.producer.jsonlines import read_jobs
    from mailfleet.producer.publisher import Producer

    # Bytes, decoded line by line, so text that is not UTF-8 is a problem on its line.
    if args.file == "-":
        jobs, problems = read_jobs(sys.stdin.buffer, settings.job_limits)
    else:
        with open(args.file, "rb") as source:
            jobs, problems = read_jobs(source, settings.job_limits)
    if problems:
        for problem in problems:
            print(problem, file=sys.stderr)
        print(f"nothing published: {len(problems)} problem(s)", file=sys.stderr)
        return EXIT_USAGE
    with Producer(settings) as producer:
        producer.publish_many(jobs)
    print(f"published {len(jobs)}")
    return EXIT_OK


def run_declare(args: argparse.Namespace, settings: Settings) -> int:
    from mailfleet.producer.connection import open_connection
    from mailfleet.producer.topology import declare, topology_of
    from mailfleet.shared.webhook_topology import webhook_topology_of

    topology, events = topology_of(settings), webhook_topology_of(settings)
    connection = open_connection(settings)
    try:
        declare(connection, topology)
        declare(connection, events)  # the events exchange, and the webhooks' queues if any
    finally:
        connection.release()
    exchanges = len(topology.exchanges) + len(events.exchanges)
    print(
        f"declared {exchanges} exchanges and {len(topology.queues) + len(events.queues)} queues "
        f"under namespace {settings.namespace!r}"
    )
    return EXIT_OK


def _require_devtools() -> None:
    """The sink, and so the demo, runs on aiosmtpd, which only the devtools extra installs."""
    if find_spec("aiosmtpd") is None:
        raise MailfleetError(
            "needs aiosmtpd, from the devtools extra: pip install 'mailfleet[devtools]'"
        )


def run_sink(args: argparse.Namespace, settings: Settings) -> int:
    _require_devtools()
    from mailfleet.producer.devtools.sink import SmtpSink

    with SmtpSink(args.host, args.port, maildir=args.maildir, keep_messages=False) as sink:
        print(f"SMTP sink listening on {sink.url} (Ctrl-C to stop)", flush=True)
        last = -1
        try:
            while True:
                time.sleep(1.0)
                if sink.count != last:
                    last = sink.count
                    print(f"received {last}", flush=True)
        except KeyboardInterrupt:
            print(f"received {sink.count} in all")
    return EXIT_OK


def run_demo(args: argparse.Namespace, settings: Settings) -> int:
    _require_devtools()
    from mailfleet.producer.devtools.demo import run

    return run(
        settings,
        emails=args.emails,
        workers=args.workers,
        own_servers=args.own_servers,
        dashboard_port=args.dashboard_port if args.dashboard else None,
    )
