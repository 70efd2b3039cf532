"""Worker-side subcommand: ``mailfleet worker``."""

from __future__ import annotations

import argparse
from pathlib import Path

from mailfleet.shared.cli import Subparsers, positive_int
from mailfleet.shared.settings import Settings

# Imported here, not in the handler, so that it loads while start-up has the garbage
# collector paused (see shared/entry.py); only the worker's commands load this module.
from mailfleet.worker.runner import Worker


def register(subparsers: Subparsers) -> None:
    worker = subparsers.add_parser("worker", help="consume email jobs and deliver them over SMTP")
    worker.add_argument(
        "--concurrency", type=positive_int, help="sender threads (MAILFLEET_CONCURRENCY)"
    )
    worker.add_argument(
        "--prefetch", type=positive_int, help="unacked messages per lane (MAILFLEET_PREFETCH)"
    )
    worker.add_argument(
        "--processes",
        type=positive_int,
        default=1,
        help="worker processes under one parent, serving one metrics port (default 1)",
    )
    worker.add_argument(
        "--burst",
        action="store_true",
        help="exit once the lane and delay queues are empty and nothing is in flight",
    )
    worker.set_defaults(handler=run_worker)

    explain = subparsers.add_parser(
        "explain", help="show the rate limits that apply to a job, their state and its wait"
    )
    explain.add_argument("job", type=Path, help="a job as JSON (one object)")
    explain.add_argument("--json", action="store_true", help="machine-readable output")
    explain.set_defaults(handler=run_explain)


def run_worker(args: argparse.Namespace, settings: Settings) -> int:
    overrides = {
        key: getattr(args, key)
        for key in ("concurrency", "prefetch")
        if getattr(args, key) is not None
    }
    settings = settings.model_copy(update=overrides)
    if args.processes > 1:
        from mailfleet.worker.mime.finish import check_finishing  # noqa: PLC0415
        from mailfleet.worker.processes.supervisor import Supervisor  # noqa: PLC0415

        check_finishing(settings)  # a bad key stops the parent, not each child in turn

        return Supervisor(settings, args.processes, burst=args.burst).run()
    return Worker(settings, burst=args.burst).run()


def run_explain(args: argparse.Namespace, settings: Settings) -> int:
    from mailfleet.worker.limits.explain import explain  # noqa: PLC0415

    report = explain(settings, args.job)
    print(report.to_json() if args.json else report.render())
    return 0
