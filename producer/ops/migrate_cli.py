"""``mailfleet migrate`` and ``mailfleet declare --check``: the path of an upgrade whose
queue arguments changed (a new version's, or a changed ``MAILFLEET_DELIVERY_LIMIT``)."""

from __future__ import annotations

import argparse

from mailfleet.producer.connection import open_connection
from mailfleet.producer.ops.migrate import migrate_queue, needs_migration
from mailfleet.producer.ops.queue_check import QueueState, check_topology
from mailfleet.producer.topology import topology_of
from mailfleet.shared.cli import EXIT_FAILURE, EXIT_OK, Subparsers
from mailfleet.shared.errors import ConfigError
from mailfleet.shared.settings import Settings
from mailfleet.shared.topology import QueueSpec
from mailfleet.shared.webhook_topology import webhook_topology_of

_CONFIRM_TIMEOUT = 30.0


def register(subparsers: Subparsers) -> None:
    migrate = subparsers.add_parser(
        "migrate",
        help="re-declare queues whose arguments differ from this version's, keeping their "
        "messages (stop the workers first)",
    )
    migrate.add_argument(
        "queues", nargs="*", metavar="QUEUE", help="only these queues (default: every one)"
    )
    migrate.set_defaults(handler=run_migrate)


def _queues(settings: Settings) -> list[QueueSpec]:
    return [*topology_of(settings).queues, *webhook_topology_of(settings).queues]


def run_check(settings: Settings) -> int:
    """Print every queue that differs or is missing; exit 1 if any does."""
    connection = open_connection(settings)
    try:
        checks = check_topology(connection, topology_of(settings), webhook_topology_of(settings))
    finally:
        connection.release()
    off = [check for check in checks if check.state is not QueueState.MATCHES]
    for check in off:
        print(check)
    differ = sum(check.state is QueueState.DIFFERS for check in off)
    if not off:
        print(f"all {len(checks)} queues match under namespace {settings.namespace!r}")
        return EXIT_OK
    print(
        f"{differ} of {len(checks)} queues differ, {len(off) - differ} missing: "
        "`mailfleet migrate` re-declares the ones that differ, `mailfleet declare` adds the missing"
    )
    return EXIT_FAILURE


def run_migrate(args: argparse.Namespace, settings: Settings) -> int:
    queues = _queues(settings)
    if args.queues:
        known = {queue.name: queue for queue in queues}
        unknown = [name for name in args.queues if name not in known]
        if unknown:
            raise ConfigError(f"not a queue of namespace {settings.namespace!r}: {unknown[0]}")
        queues = [known[name] for name in args.queues]
    connection = open_connection(settings)
    try:
        done = 0
        for queue in queues:
            if needs_migration(connection, queue):
                print(migrate_queue(connection, queue, _CONFIRM_TIMEOUT), flush=True)
                done += 1
    finally:
        connection.release()
    print(f"migrated {done} queue(s) under namespace {settings.namespace!r}")
    return EXIT_OK
