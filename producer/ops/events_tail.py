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

from kombu.connection import Connection

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


def binding_keys(kinds: list[str] | None) -> list[str]:
    """The routing keys that select ``kinds`` of event (every kind when none is given)."""
    return [f"{kind}.*" for kind in kinds] if kinds else ["#"]


class EventTail:
    """A server-named, exclusive, auto-deleted queue bound to the events exchange, and the
    events it received; the caller owns (and releases) ``connection``."""

    def __init__(self, connection: Connection, exchange: str, keys: list[str]) -> None:
        self._connection = connection
        self._exchange = exchange
        self._received: list[bytes] = []
        with broker_errors(exchange, kind="exchange"):
            channel = connection.channel()
            queue, _, _ = channel.queue_declare("", exclusive=True, auto_delete=True)
            for key in keys:
                channel.queue_bind(queue, exchange, key)
            channel.basic_consume(queue, no_ack=True, callback=self._on_message)

    def _on_message(self, message: Any) -> None:
        self._received.append(bytes(message.body))

    def poll(self, timeout: float) -> list[bytes]:
        """The events (as published) that arrived within ``timeout`` seconds, maybe none."""
        with broker_errors(self._exchange, kind="exchange"), contextlib.suppress(TimeoutError):
            self._connection.drain_events(timeout=timeout)
        received, self._received = self._received, []
        return received


def run_tail(args: argparse.Namespace, settings: Settings) -> int:
    exchange = settings.names.events_exchange
    keys = binding_keys(args.kind)
    seen = 0
    connection = open_connection(settings)
    try:
        tail = EventTail(connection, exchange, keys)
        print(f"following {exchange} ({', '.join(keys)})", file=sys.stderr, flush=True)
        last = time.monotonic()
        while args.count is None or seen < args.count:
            for body in tail.poll(0.5):
                if args.count is not None and seen >= args.count:
                    break
                line = body.decode() if args.json else describe(Event.from_wire(body))
                sys.stdout.write(line + "\n")
                sys.stdout.flush()
                seen += 1
                last = time.monotonic()
            if args.idle is not None and time.monotonic() - last >= args.idle:
                break
    except KeyboardInterrupt:
        pass
    finally:
        connection.release()
    return EXIT_OK
