"""``mailfleet webhooks``: POST every event to the endpoints of ``MAILFLEET_WEBHOOKS``."""

from __future__ import annotations

import argparse

from mailfleet.shared.cli import Subparsers, positive_int
from mailfleet.shared.settings import Settings


def register(subparsers: Subparsers) -> None:
    webhooks = subparsers.add_parser(
        "webhooks",
        help="deliver events to the webhook endpoints (MAILFLEET_WEBHOOKS), signed and retried",
    )
    webhooks.add_argument(
        "--concurrency",
        type=positive_int,
        help="requests in flight per endpoint (MAILFLEET_WEBHOOK_CONCURRENCY)",
    )
    webhooks.set_defaults(handler=run_webhooks)


def run_webhooks(args: argparse.Namespace, settings: Settings) -> int:
    from mailfleet.worker.webhooks.runner import WebhookService  # noqa: PLC0415

    if args.concurrency is not None:
        settings = settings.model_copy(update={"webhook_concurrency": args.concurrency})
    return WebhookService(settings).run()
