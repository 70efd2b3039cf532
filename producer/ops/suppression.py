"""``mailfleet suppression list|add|remove``: the addresses never to mail again.

The list lives in Redis (:mod:`mailfleet.shared.suppression`); workers skip its addresses
and ``mailfleet dlq replay`` drops them. An entry's scope is everything (``*``), or one
sender domain's one list (``--scope example.com/newsletter``), as a one-click unsubscribe
writes it. Exit codes: 0 done, 1 an error (or removing an address that is not on the list),
2 bad usage.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime

from mailfleet.shared.addresses import bare_address, check_address
from mailfleet.shared.cli import EXIT_FAILURE, EXIT_OK, Subparsers
from mailfleet.shared.clock import utc_stamp
from mailfleet.shared.redis_client import make_redis
from mailfleet.shared.scope import EVERYTHING, Scope
from mailfleet.shared.settings import Settings
from mailfleet.shared.suppression import Suppressed, SuppressionList

DEFAULT_REASON = "added by an operator"


def normalized_address(text: str) -> str:
    """The bare, lower-cased address in ``text`` (ValueError naming the problem)."""
    return bare_address(check_address(text)).lower()


def _address(text: str) -> str:
    try:
        return normalized_address(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _scope(text: str) -> Scope | None:
    if text == EVERYTHING:
        return None
    try:
        return Scope.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


_SCOPE_HELP = "DOMAIN/LIST: only that sender's list (default *: everything)"


def register(subparsers: Subparsers) -> None:
    suppression = subparsers.add_parser(
        "suppression", help="list, add or remove addresses that are never mailed"
    )
    actions = suppression.add_subparsers(dest="action", metavar="ACTION", required=True)

    listing = actions.add_parser("list", help="every suppressed address, why and since when")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(handler=run_list)

    add = actions.add_parser("add", help="suppress an address")
    add.add_argument("address", type=_address, help="e.g. ann@example.org")
    add.add_argument("--reason", default=DEFAULT_REASON, help=f"default: {DEFAULT_REASON!r}")
    add.add_argument("--scope", type=_scope, default=None, help=_SCOPE_HELP)
    add.set_defaults(handler=run_add)

    remove = actions.add_parser("remove", help="mail an address again")
    remove.add_argument("address", type=_address)
    remove.add_argument("--scope", type=_scope, default=None, help=_SCOPE_HELP)
    remove.set_defaults(handler=run_remove)


def _suppression_list(settings: Settings) -> SuppressionList:
    return SuppressionList(make_redis(settings), settings.names)


def _when(entry: Suppressed) -> str:
    return utc_stamp(datetime.fromtimestamp(entry.at, UTC))


def run_list(args: argparse.Namespace, settings: Settings) -> int:
    suppression = _suppression_list(settings)
    entries = sorted(
        [*suppression.entries(), *suppression.scoped_entries()],
        key=lambda entry: (entry.address, entry.scope != EVERYTHING, entry.scope),
    )
    if args.json:
        rows = [
            {"address": e.address, "scope": e.scope, "reason": e.reason, "at": _when(e)}
            for e in entries
        ]
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return EXIT_OK
    if entries:
        width = max(len(entry.address) for entry in entries)
        scopes = max(len("SCOPE"), *(len(entry.scope) for entry in entries))
        print(f"{'ADDRESS'.ljust(width)}  {'SCOPE'.ljust(scopes)}  {'SINCE'.ljust(20)}  REASON")
        for entry in entries:
            print(
                f"{entry.address.ljust(width)}  {entry.scope.ljust(scopes)}  "
                f"{_when(entry).ljust(20)}  {entry.reason}"
            )
    print(f"{len(entries)} suppressed addresses")
    return EXIT_OK


def _for(scope: Scope | None) -> str:
    return "" if scope is None else f" for {scope}"


def run_add(args: argparse.Namespace, settings: Settings) -> int:
    suppression = _suppression_list(settings)
    if args.scope is None:
        suppression.add(args.address, args.reason)
    else:
        suppression.add_scoped(args.address, args.scope, args.reason)
    print(f"suppressed {args.address}{_for(args.scope)}")
    return EXIT_OK


def run_remove(args: argparse.Namespace, settings: Settings) -> int:
    suppression = _suppression_list(settings)
    scope: Scope | None = args.scope
    removed = (
        suppression.remove(args.address)
        if scope is None
        else suppression.remove_scoped(args.address, scope)
    )
    if removed:
        print(f"removed {args.address}{_for(scope)}")
        return EXIT_OK
    print(
        f"mailfleet suppression: {args.address} is not on the suppression list{_for(scope)}",
        file=sys.stderr,
    )
    return EXIT_FAILURE
