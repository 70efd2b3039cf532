"""``mailfleet migrate-keys``: move a namespace's Redis keys to the hash-tagged layout.

Before the layout changed, keys were ``ns:...``; now they are ``{ns}:...`` so that Redis
Cluster keeps a namespace in one slot. Run it once per namespace, with the workers stopped,
against the Redis the keys are on (before moving to a cluster: a rename cannot cross slots).
Each key is renamed as it is, with its TTL. A key whose new name already exists (a worker
of the new layout ran first) is left where it is and named, and the command fails: nothing
is overwritten. Running it again moves what is left; with nothing left it does nothing.
Exit codes: 0 done, 1 keys left in conflict or Redis unreachable, 2 bad usage.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field

import redis

from mailfleet.shared.cli import EXIT_FAILURE, EXIT_OK, Subparsers
from mailfleet.shared.names import Names
from mailfleet.shared.redis_client import make_redis, redis_errors
from mailfleet.shared.settings import Settings

_BATCH = 500


@dataclass
class Migration:
    moved: int = 0
    conflicts: list[str] = field(default_factory=list)


def register(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "migrate-keys", help="rename a namespace's Redis keys from ns:... to {ns}:..."
    )
    parser.add_argument("--dry-run", action="store_true", help="count the keys to move, move none")
    parser.set_defaults(handler=run)


def legacy_keys(client: redis.Redis, names: Names) -> list[str]:
    """Every key of the old layout, listed before any is renamed (a SCAN that runs while
    keys move could return one twice or miss one)."""
    match = f"{names.legacy_redis_prefix}*"
    return [key.decode() for key in client.scan_iter(match=match, count=_BATCH)]


def migrate(client: redis.Redis, names: Names, *, dry_run: bool = False) -> Migration:
    """Rename every ``ns:...`` key to ``{ns}:...`` unless the new name exists."""
    result = Migration()
    with redis_errors("cannot migrate the namespace's Redis keys"):
        keys = legacy_keys(client, names)
        if dry_run:
            result.moved = len(keys)
            return result
        for start in range(0, len(keys), _BATCH):
            chunk = keys[start : start + _BATCH]
            pipeline = client.pipeline(transaction=False)
            for key in chunk:
                new = names.redis_prefix + key.removeprefix(names.legacy_redis_prefix)
                pipeline.renamenx(key, new)
            for key, renamed in zip(chunk, pipeline.execute(), strict=True):
                if renamed:
                    result.moved += 1
                else:
                    result.conflicts.append(key)
    return result


def run(args: argparse.Namespace, settings: Settings) -> int:
    names = settings.names
    client = make_redis(settings, timeout=5.0)
    try:
        result = migrate(client, names, dry_run=args.dry_run)
    finally:
        client.close()
    verb = "would move" if args.dry_run else "moved"
    print(f"{verb} {result.moved} keys from {names.legacy_redis_prefix}* to {names.redis_prefix}*")
    for key in result.conflicts:
        print(f"left {key}: its new name exists already", file=sys.stderr)
    return EXIT_FAILURE if result.conflicts else EXIT_OK
