"""``mailfleet dlq list|show|replay|purge|export``: the dead-letter tools for operators.

The actions, filters and options; :mod:`mailfleet.producer.ops.dlq.commands` runs them.
Exit codes: 0 done, 1 an error (or a replay the broker partly refused, or a purge the
operator declined), 2 bad usage. ``list``, ``show`` and ``export`` remove nothing.
"""

from __future__ import annotations

import argparse

from mailfleet.producer.ops.dlq.commands import (
    run_export,
    run_list,
    run_purge,
    run_replay,
    run_show,
)
from mailfleet.producer.ops.dlq.letter import REASONS
from mailfleet.shared.cli import Subparsers, positive_float, positive_int
from mailfleet.shared.durations import parse_duration
from mailfleet.shared.job import Lane


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _filters() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("filters (a dead letter must pass every one given)")
    group.add_argument("--reason", action="append", choices=REASONS, help="repeatable")
    group.add_argument("--lane", action="append", choices=[lane.value for lane in Lane])
    group.add_argument("--domain", action="append", help="a recipient domain; repeatable")
    group.add_argument(
        "--older-than", type=_duration, metavar="DURATION", help="failed at least this long ago"
    )
    group.add_argument("--id", action="append", dest="ids", metavar="ID", help="repeatable")
    group.add_argument("--limit", type=positive_int, metavar="N", help="act on at most N")
    return parent


def _queue_choice() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--queue",
        choices=("jobs", "events"),
        default="jobs",
        help="jobs: {ns}.dead (default); events: webhook events in {ns}.events.dead",
    )
    parent.add_argument(
        "--endpoint",
        action="append",
        metavar="NAME",
        help="with --queue events: only this webhook endpoint's; repeatable",
    )
    return parent


def register(subparsers: Subparsers) -> None:
    dlq = subparsers.add_parser("dlq", help="list, show, replay, purge or export dead letters")
    actions = dlq.add_subparsers(dest="action", metavar="ACTION", required=True)
    filters = _filters()
    queue = _queue_choice()
    json_flag = argparse.ArgumentParser(add_help=False)
    json_flag.add_argument("--json", action="store_true", help="machine-readable output")

    listing = actions.add_parser(
        "list", parents=[filters, queue, json_flag], help="a table of dead letters (removes none)"
    )
    listing.set_defaults(handler=run_list)

    show = actions.add_parser(
        "show", parents=[queue, json_flag], help="headers and job of one letter"
    )
    show.add_argument("id", help="the job id (message id)")
    show.set_defaults(handler=run_show)

    replay = actions.add_parser(
        "replay",
        parents=[filters, queue, json_flag],
        help="move dead letters back to their lanes (events: to their endpoints)",
    )
    replay.add_argument("--rate", type=positive_float, metavar="N", help="messages per second")
    replay.add_argument("--dry-run", action="store_true", help="report only; move nothing")
    replay.set_defaults(handler=run_replay)

    purge = actions.add_parser(
        "purge", parents=[filters, queue, json_flag], help="delete dead letters for good"
    )
    purge.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    purge.add_argument("--dry-run", action="store_true", help="report only; delete nothing")
    purge.set_defaults(handler=run_purge)

    export = actions.add_parser(
        "export", parents=[filters, queue], help="dead letters as JSON lines (removes none)"
    )
    export.add_argument("--output", metavar="FILE", help="write here instead of stdout")
    export.set_defaults(handler=run_export)
