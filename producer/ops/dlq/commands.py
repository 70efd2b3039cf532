"""What each ``mailfleet dlq`` action does, given the arguments that
:mod:`mailfleet.producer.ops.dlq.cli` parsed."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, TextIO

from kombu.connection import Connection

from mailfleet.producer.connection import open_connection
from mailfleet.producer.ops.dlq.events import event_reader, replay_events
from mailfleet.producer.ops.dlq.filters import build_selection
from mailfleet.producer.ops.dlq.letter import DeadLetter, Selection
from mailfleet.producer.ops.dlq.output import (
    export_record,
    render_letter,
    render_table,
    show_record,
    summary_row,
)
from mailfleet.producer.ops.dlq.queue import DeadLetterQueue
from mailfleet.producer.ops.dlq.report import PurgeReport, ReplayReport
from mailfleet.shared.cli import EXIT_FAILURE, EXIT_OK, EXIT_USAGE
from mailfleet.shared.recipients import RecipientFilter
from mailfleet.shared.redis_client import make_redis
from mailfleet.shared.settings import Settings

_SHOWN_IDS = 20


def selection_of(args: argparse.Namespace) -> Selection:
    return build_selection(
        reasons=args.reason,
        lanes=args.lane,
        domains=args.domain,
        ids=args.ids,
        older_than=args.older_than,
    )


def _events(args: argparse.Namespace) -> bool:
    """``--queue events``: the webhook events of ``{ns}.events.dead``, not dead jobs."""
    return getattr(args, "queue", "jobs") == "events"


def _event_queue(
    connection: Connection, settings: Settings, args: argparse.Namespace
) -> DeadLetterQueue:
    return DeadLetterQueue(
        connection,
        settings,
        queue=settings.names.events_dead_queue,
        reader=event_reader(settings.names, args.endpoint or ()),
    )


@contextlib.contextmanager
def _dead_letters(
    settings: Settings, args: argparse.Namespace | None = None
) -> Iterator[DeadLetterQueue]:
    connection = open_connection(settings)
    try:
        if args is not None and _events(args):
            yield _event_queue(connection, settings, args)
        else:
            yield DeadLetterQueue(connection, settings)
    finally:
        connection.release()


def _matching(
    queue: DeadLetterQueue, args: argparse.Namespace, use: Callable[[DeadLetter], object]
) -> tuple[int, int]:
    """Call ``use(letter)`` for each match (up to ``--limit``); return (matched, in queue)."""
    selection, matched = selection_of(args), 0
    moment = datetime.now(UTC)
    with queue.browse() as scan:
        for letter in scan:
            if selection.matches(letter, moment):
                use(letter)
                matched += 1
                if args.limit is not None and matched >= args.limit:
                    break
        return matched, scan.total


def run_list(args: argparse.Namespace, settings: Settings) -> int:
    rows: list[dict[str, Any]] = []
    with _dead_letters(settings, args) as queue:
        _, total = _matching(queue, args, lambda letter: rows.append(summary_row(letter)))
        where = queue.queue
    if args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return EXIT_OK
    if rows:
        print(render_table(rows))
    print(f"listed {len(rows)} of {total} dead letters in {where}")
    return EXIT_OK


def run_show(args: argparse.Namespace, settings: Settings) -> int:
    with _dead_letters(settings, args) as queue:
        found = queue.letters(Selection(ids=frozenset({args.id})))
    if not found:
        print(
            f"mailfleet dlq show: no dead letter with id {args.id!r} in {queue.queue}",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    if args.json:
        print(json.dumps([show_record(letter) for letter in found], indent=2, ensure_ascii=False))
    else:
        print("\n---\n".join(render_letter(letter) for letter in found))
    return EXIT_OK


def _ids(label: str, ids: list[str]) -> None:
    if ids:
        more = f" … and {len(ids) - _SHOWN_IDS} more" if len(ids) > _SHOWN_IDS else ""
        print(f"{label}: {', '.join(ids[:_SHOWN_IDS])}{more}")


def _replay_events(args: argparse.Namespace, settings: Settings) -> ReplayReport:
    """Events back to the queues of their endpoints: no sent ledger, no Redis."""
    connection = open_connection(settings)
    try:
        return replay_events(
            _event_queue(connection, settings, args),
            connection,
            settings.names,
            selection_of(args),
            limit=args.limit,
            rate=args.rate,
            dry_run=args.dry_run,
        )
    finally:
        connection.release()


def run_replay(args: argparse.Namespace, settings: Settings) -> int:
    if _events(args):
        report = _replay_events(args, settings)
    else:
        client = make_redis(settings)
        try:
            with _dead_letters(settings) as queue:
                report = queue.replay(
                    selection_of(args),
                    RecipientFilter.reading(client, settings.names),
                    limit=args.limit,
                    rate=args.rate,
                    dry_run=args.dry_run,
                )
        finally:
            client.close()
    if args.json:
        print(json.dumps(report.as_dict()))
    else:
        if args.dry_run:
            _ids("would replay", report.replayed)
        _ids("skipped, already sent to every recipient", report.skipped_sent)
        _ids("skipped, every recipient left is suppressed", report.skipped_suppressed)
        _ids("invalid, cannot be replayed", report.invalid)
        _ids("refused by the broker", report.failed)
        print(report.summary())
    if report.error:
        print(f"mailfleet dlq replay: stopped: {report.error}", file=sys.stderr)
    return EXIT_FAILURE if report.error or report.failed else EXIT_OK


def _confirm(preview: PurgeReport, selection: Selection) -> bool:
    """Show what a purge would delete and ask the operator on the terminal."""
    _ids("would purge", preview.purged)
    try:
        answer = input(
            f"Delete {len(preview.purged)} of {preview.total} dead letters "
            f"({selection.describe()}) for good? [y/N] "
        )
    except EOFError:
        answer = ""
    return answer.strip().lower() in {"y", "yes"}


def run_purge(args: argparse.Namespace, settings: Settings) -> int:
    selection = selection_of(args)
    if not (args.yes or args.dry_run):
        if not sys.stdin.isatty():
            print(
                "mailfleet dlq purge: refusing to delete without confirmation: stdin is not a "
                "terminal; pass --yes (or --dry-run to see what would go)",
                file=sys.stderr,
            )
            return EXIT_USAGE
        with _dead_letters(settings, args) as queue:
            preview = queue.purge(selection, limit=args.limit, dry_run=True)
        if not preview.purged:
            print(PurgeReport(total=preview.total).summary())
            return EXIT_OK
        if not _confirm(preview, selection):
            print("purge cancelled; nothing removed")
            return EXIT_FAILURE
        # Only the letters shown: one that dies (again) while the operator reads the prompt
        # is not deleted unseen, even under an id shown.
        with _dead_letters(settings, args) as queue:
            report = queue.purge(selection, only=Counter(preview.fingerprints))
        print(json.dumps(report.as_dict()) if args.json else report.summary())
        return EXIT_OK
    with _dead_letters(settings, args) as queue:
        report = queue.purge(selection, limit=args.limit, dry_run=args.dry_run)
    print(json.dumps(report.as_dict()) if args.json else report.summary())
    return EXIT_OK


def run_export(args: argparse.Namespace, settings: Settings) -> int:
    try:
        output: TextIO = (
            open(args.output, "w", encoding="utf-8")  # noqa: SIM115 (closed below)
            if args.output
            else sys.stdout
        )
    except OSError as exc:
        print(f"mailfleet dlq export: cannot write {args.output}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    try:
        with _dead_letters(settings, args) as queue:
            count, total = _matching(
                queue,
                args,
                lambda letter: output.write(json.dumps(export_record(letter)) + "\n"),
            )
    finally:
        if output is not sys.stdout:
            output.close()
    where = f" to {args.output}" if args.output else ""
    print(f"exported {count} of {total} dead letters{where}", file=sys.stderr)
    return EXIT_OK
