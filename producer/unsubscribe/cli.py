"""``mailfleet unsubscribe-server [--host H] [--port 8026]``: serve the one-click links the
worker writes into bulk mail (``MAILFLEET_UNSUBSCRIBE_URL`` is where the public reaches it)."""

from __future__ import annotations

import argparse

from mailfleet.shared.cli import EXIT_OK, Subparsers
from mailfleet.shared.errors import ConfigError
from mailfleet.shared.redis_client import make_redis
from mailfleet.shared.settings import Settings
from mailfleet.shared.suppression import SuppressionList
from mailfleet.shared.unsubscribe_token import UnsubscribeTokens

DEFAULT_PORT = 8026


def register(subparsers: Subparsers) -> None:
    server = subparsers.add_parser(
        "unsubscribe-server", help="serve one-click unsubscribe links (RFC 8058)"
    )
    server.add_argument("--host", default="127.0.0.1", help="address to listen on")
    server.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"default {DEFAULT_PORT}")
    server.set_defaults(handler=run_server)


def run_server(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn  # noqa: PLC0415 (only this command needs it)

    from mailfleet.producer.unsubscribe.app import build_app  # noqa: PLC0415

    if settings.unsubscribe_secret is None:
        raise ConfigError("MAILFLEET_UNSUBSCRIBE_SECRET: must be set to check the links")
    tokens = UnsubscribeTokens(settings.unsubscribe_secret)
    app = build_app(tokens, SuppressionList(make_redis(settings), settings.names))
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)
    return EXIT_OK
