"""The ``mailfleet`` root command.

Subcommands come from the ``mailfleet.commands`` entry points (``producer/cli.py``,
``worker/cli.py``), the way pytest finds plugins, so this module imports neither side.
Each ``register(subparsers)`` adds parsers whose ``handler(args, settings) -> int`` runs
the command.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points
from typing import Protocol

from mailfleet.shared.errors import ConfigError, MailfleetError
from mailfleet.shared.logging import configure_logging
from mailfleet.shared.settings import Settings, load_settings

Handler = Callable[[argparse.Namespace, Settings], int]
EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


class Subparsers(Protocol):
    def add_parser(self, name: str, **kwargs: object) -> argparse.ArgumentParser: ...


def positive_int(text: str) -> int:
    """argparse type: a whole number of at least 1."""
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {text!r}")
    return int(text)


def positive_float(text: str) -> float:
    """argparse type: a number above 0."""
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a number above 0, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mailfleet",
        description="Send email at volume through RabbitMQ, Redis and SMTP relays.",
        epilog="Settings come from MAILFLEET_* environment variables (see README).",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for entry_point in sorted(entry_points(group="mailfleet.commands"), key=lambda ep: ep.name):
        entry_point.load()(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"mailfleet: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    configure_logging(settings.log_format, settings.log_level)
    handler: Handler = args.handler
    try:
        return handler(args, settings)
    except (MailfleetError, OSError) as exc:
        print(f"mailfleet {args.command}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
