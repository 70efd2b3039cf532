"""``mailfleet inbound`` and ``mailfleet bounce``: the two ways reports come in."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING

from mailfleet.shared.cli import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, Subparsers
from mailfleet.shared.errors import ConfigError, MailfleetError
from mailfleet.shared.redis_client import make_redis
from mailfleet.shared.settings import Settings
from mailfleet.shared.verp import Verp

if TYPE_CHECKING:
    from mailfleet.worker.bounces.process import BounceProcessor

_ENVELOPE_HEADERS = ("Delivered-To", "X-Original-To")  # where MTAs record the recipient


def register(subparsers: Subparsers) -> None:
    inbound = subparsers.add_parser(
        "inbound", help="an SMTP listener for bounces and complaints to MAILFLEET_BOUNCE_DOMAIN"
    )
    inbound.add_argument("--host", default="127.0.0.1", help="address to listen on")
    inbound.add_argument("--port", type=int, default=2525, help="port (default 2525)")
    inbound.set_defaults(handler=run_inbound)

    bounce = subparsers.add_parser(
        "bounce", help="process one bounce or complaint message (for an MTA's pipe transport)"
    )
    bounce.add_argument("file", nargs="?", default="-", help="the raw message; - for stdin")
    bounce.add_argument(
        "--recipient",
        help="the envelope recipient (bounces+TOKEN@...), e.g. Postfix's ${recipient}",
    )
    bounce.set_defaults(handler=run_bounce)


def _verp(settings: Settings) -> Verp:
    verp = settings.verp
    if verp is None:
        raise ConfigError("MAILFLEET_BOUNCE_DOMAIN: not set; reports are matched by its tokens")
    return verp


def _processor(settings: Settings) -> BounceProcessor:
    from mailfleet.worker.bounces.process import BounceProcessor  # noqa: PLC0415
    from mailfleet.worker.broker.event_publisher import EventPublisher  # noqa: PLC0415

    events = EventPublisher(settings) if settings.events else None
    return BounceProcessor(settings, _verp(settings), make_redis(settings), events)


def run_bounce(args: argparse.Namespace, settings: Settings) -> int:
    try:
        raw = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    except OSError as exc:
        print(f"mailfleet bounce: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return EXIT_USAGE
    if not raw.strip():
        print("mailfleet bounce: the input is empty", file=sys.stderr)
        return EXIT_USAGE
    recipient = args.recipient or _envelope_recipient(raw)
    try:
        outcome = _processor(settings).process(raw, recipient)
    except MailfleetError as exc:
        print(f"mailfleet bounce: error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    print(f"{outcome.status}: {outcome.line.removeprefix('ignored: ')}")
    return EXIT_OK


def _envelope_recipient(raw: bytes) -> str | None:
    """The recipient an MTA recorded in the headers it added on top (Delivered-To)."""
    head = raw.split(b"\n\n", 1)[0].split(b"\r\n\r\n", 1)[0]
    for line in head.decode("utf-8", "replace").splitlines():
        name, _, value = line.partition(":")
        if name.strip() in _ENVELOPE_HEADERS and "+" in value:
            return value.strip()
    return None


def run_inbound(args: argparse.Namespace, settings: Settings) -> int:
    if find_spec("aiosmtpd") is None:
        raise MailfleetError(
            "needs aiosmtpd, from the inbound extra: pip install 'mailfleet[inbound]'"
        )
    from mailfleet.worker.bounces.inbound import InboundServer  # noqa: PLC0415
    from mailfleet.worker.health import on_metrics_port  # noqa: PLC0415

    domain = _verp(settings).domain
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    processor = _processor(settings)
    server = InboundServer(processor, domain, args.host, args.port, settings.inbound_max_bytes)
    health = on_metrics_port(settings.metrics_port)(processor.metrics.registry, lambda: {})
    with server:
        if health is not None:
            health.start()
        print(f"inbound: listening on {args.host}:{server.port} for @{domain}", flush=True)
        stop.wait()
        if health is not None:
            health.stop()
    return EXIT_OK
