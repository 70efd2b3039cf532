"""``mailfleet events tail``: follow the event stream from a queue of its own.

The queue is server-named, exclusive and auto-deleted: it sees the events published while
the command runs, takes none from anybody else's queue, and is gone when the command stops.
Exit codes: 0 done (``--count`` events seen, ``--idle`` passed, or Ctrl-C), 1 an error, 2 bad
usage.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from typing import Any

from mailfleet.producer.amqp_errors import broker_errors
from mailfleet.producer.connection import open_connection
from mailfleet.shared.cli import EXIT_OK, Subparsers, positive_float, positive_int
from mailfleet.shared.events import Event, EventKind
from mailfleet.shared.settings import Settings


def register(subparsers: Subparsers) -> None:
    events = subparsers.add_parser("events", help="follow what became of each email")
    actions = events.add_subparsers(dest="action", metavar="ACTION", required=True)
    tail = actions.add_parser("tail", help="print events as they are published")
    tail.add_argument(
        "--kind",
        action="append",
        choices=[kind.value for kind in EventKind],
        help="only this kind (repeatable); default: every kind",
    )
    tail.add_argument("--json", action="store_true", help="one event per line, as published")
    tail.add_argument("--count", type=positive_int, help="stop after this many events")
    tail.add_argument("--idle", type=positive_float, help="stop after this many s without one")
    tail.set_defaults(handler=run_tail)


def describe(event: Event) -> str:
    """One line for a person: when, what, which job and recipient, and the reply."""
    parts = [event.occurred_at, event.event.value, event.lane.value, event.job_id]
    parts.append(event.recipient)
    if event.smtp is not None:
        parts.append(f"{event.smtp.code} {event.smtp.text}".strip())
    if event.reason:
        parts.append(f"reason={event.reason}")
    if event.next_attempt_at:
        parts.append(f"next={event.next_attempt_at}")
    return "  ".join(parts)


def run_tail(args: argparse.Namespace, settings: Settings) -> int:
    exchange = settings.names.events_exchange
    keys = [f"{kind}.*" for kind in args.kind] if args.kind else ["#"]
    seen = 0
    connection = open_connection(settings)
    try:
        with broker_errors(exchange):
            channel = connection.channel()
            queue, _, _ = channel.queue_declare("", exclusive=True, auto_delete=True)
            for key in keys:
                channel.queue_bind(queue, exchange, key)

            def on_message(message: Any) -> None:
                nonlocal seen
                body = bytes(message.body)
                line = body.decode() if args.json else describe(Event.from_wire(body))
                sys.stdout.write(line + "\n")
                sys.stdout.flush()
                seen += 1

            channel.basic_consume(queue, no_ack=True, callback=on_message)
            print(f"following {exchange} ({', '.join(keys)})", file=sys.stderr, flush=True)
            last = time.monotonic()
            while args.count is None or seen < args.count:
                before = seen
                with contextlib.suppress(TimeoutError):
                    connection.drain_events(timeout=0.5)
                if seen > before:
                    last = time.monotonic()
                elif args.idle is not None and time.monotonic() - last >= args.idle:
                    break
    except KeyboardInterrupt:
        pass
    finally:
        connection.release()
    return EXIT_OK
