"""The ``mailfleet`` root command.

Each subcommand is named in :data:`COMMANDS` with the module that registers it, by path,
so this module imports neither side, and ``mailfleet worker`` imports only the worker's
side: start-up is paid for on every worker start. Each ``register(subparsers)`` adds
parsers whose ``handler(args, settings) -> int`` runs the command.
"""

from __future__ import annotations

import argparse
import gc
import sys
from collections.abc import Callable, Sequence
from importlib import import_module
from typing import Protocol

from mailfleet.shared.errors import ConfigError, MailfleetError
from mailfleet.shared.logging import configure_logging
from mailfleet.shared.settings import Settings, load_settings

Handler = Callable[[argparse.Namespace, Settings], int]

# Command → "module:function" that registers it (and any sibling commands of that module).
COMMANDS: dict[str, str] = {
    "publish": "mailfleet.producer.cli:register",
    "declare": "mailfleet.producer.cli:register",
    "sink": "mailfleet.producer.cli:register",
    "demo": "mailfleet.producer.cli:register",
    "stats": "mailfleet.producer.ops.stats:register",
    "events": "mailfleet.producer.ops.events_tail:register",
    "dlq": "mailfleet.producer.ops.dlq.cli:register",
    "suppression": "mailfleet.producer.ops.suppression:register",
    "worker": "mailfleet.worker.cli:register",
    "explain": "mailfleet.worker.cli:register",
    "schema": "mailfleet.shared.schema:register",
    "webhooks": "mailfleet.worker.webhooks.cli:register",
    "unsubscribe-server": "mailfleet.producer.unsubscribe.cli:register",
    "dashboard": "mailfleet.dashboard.cli:register",
    "template": "mailfleet.producer.templates_cli:register",
    "campaign": "mailfleet.producer.campaigns.cli:register",
    "inbound": "mailfleet.worker.bounces.cli:register",
    "report": "mailfleet.producer.ops.report:register",
    "resume": "mailfleet.producer.ops.report:register",
    "bounce": "mailfleet.worker.bounces.cli:register",
    "migrate": "mailfleet.producer.ops.migrate_cli:register",
    "migrate-keys": "mailfleet.producer.ops.migrate_keys:register",
}
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


class _VersionAction(argparse.Action):
    """``--version``, with the installed version looked up only when asked for:
    importlib.metadata costs about 20 ms that every worker start would pay."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, help="show the version and exit")

    def __call__(self, parser: argparse.ArgumentParser, *args: object) -> None:
        from importlib import metadata  # noqa: PLC0415

        try:
            version = metadata.version("mailfleet")
        except metadata.PackageNotFoundError:  # run from a checkout without installing
            version = "unknown (not installed)"
        print(f"mailfleet {version}")  # to stdout, as argparse's own version action does
        parser.exit()


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The root parser with ``command``'s subparsers, or every command's when it is not one."""
    parser = argparse.ArgumentParser(
        prog="mailfleet",
        description="Send email at volume through RabbitMQ, Redis and SMTP relays.",
        epilog="Settings come from MAILFLEET_* environment variables (see README).",
    )
    parser.add_argument("--version", action=_VersionAction)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    targets = [COMMANDS[command]] if command in COMMANDS else COMMANDS.values()
    for target in dict.fromkeys(targets):
        module, _, function = target.partition(":")
        getattr(import_module(module), function)(subparsers)
    return parser


def start_up_done() -> None:
    """Resume the garbage collector if the console entry point paused it, keeping what
    start-up built out of its sight for good (``gc.freeze``): it lives as long as we do."""
    if not gc.isenabled():
        gc.freeze()
        gc.enable()


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(argv[0] if argv else None).parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"mailfleet: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    configure_logging(settings.log_format, settings.log_level)
    handler: Handler = args.handler
    start_up_done()
    try:
        return handler(args, settings)
    except (MailfleetError, OSError) as exc:
        print(f"mailfleet {args.command}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
