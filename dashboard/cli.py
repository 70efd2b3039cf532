"""``mailfleet dashboard [--host 127.0.0.1] [--port 8025]``: the dashboard, served by uvicorn.

Exit codes: 0 stopped (Ctrl-C), 1 an error (the port is taken), 2 bad usage (a bind beyond
loopback without ``MAILFLEET_DASHBOARD_TOKEN``).
"""

from __future__ import annotations

import argparse
import sys

from mailfleet.shared.cli import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, Subparsers
from mailfleet.shared.errors import ConfigError
from mailfleet.shared.settings import Settings

DEFAULT_PORT = 8025


def _port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number 0-65535, got {text!r}")
    return int(text)


def register(subparsers: Subparsers) -> None:
    dashboard = subparsers.add_parser(
        "dashboard", help="see and steer the namespace in a browser (queues, dead letters, ...)"
    )
    dashboard.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    dashboard.add_argument(
        "--port", type=_port, default=DEFAULT_PORT, help=f"default {DEFAULT_PORT}"
    )
    dashboard.set_defaults(handler=run_dashboard)


def run_dashboard(args: argparse.Namespace, settings: Settings) -> int:
    from mailfleet.dashboard.bind import check_bind  # noqa: PLC0415 (kept off other commands)

    try:
        check_bind(args.host, settings.dashboard_token)
    except ConfigError as exc:
        print(f"mailfleet dashboard: {exc}", file=sys.stderr)
        return EXIT_USAGE
    from mailfleet.dashboard.serve import serve  # noqa: PLC0415

    return EXIT_OK if serve(settings, args.host, args.port) else EXIT_FAILURE
