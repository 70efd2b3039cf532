"""``manage.py mailfleet_relay``: move the outbox to RabbitMQ until stopped (Ctrl-C, SIGTERM),
or with ``--once`` until it is empty. Serves the outbox gauges on MAILFLEET_METRICS_PORT."""

from __future__ import annotations

import signal
import threading
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from prometheus_client import CollectorRegistry, start_http_server

from mailfleet.producer.django.backend import backend_config
from mailfleet.producer.django.outbox import OutboxRelay
from mailfleet.producer.django.outbox_metrics import OutboxCollector


class Command(BaseCommand):  # type: ignore[misc]  # django ships no type hints
    help = "Move mailfleet's outbox rows to RabbitMQ (publisher confirms, then delete)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--once", action="store_true", help="relay until empty, then exit")
        parser.add_argument("--batch", type=int, default=500, help="rows per transaction")
        parser.add_argument("--interval", type=float, default=1.0, help="seconds between polls")
        parser.add_argument("--database", help="the outbox's database alias (MAILFLEET_DATABASE)")

    def handle(self, *args: Any, **options: Any) -> None:
        config = backend_config(using=options["database"])
        relay = OutboxRelay(config.settings, using=config.using, batch=options["batch"])
        if options["once"]:
            try:
                moved = relay.drain()
            finally:
                relay.close()
            self.stdout.write(f"relayed {moved}")
            return
        if config.settings.metrics_port:
            registry = CollectorRegistry()
            registry.register(OutboxCollector(config.settings.namespace, config.using))
            start_http_server(config.settings.metrics_port, registry=registry)
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        relay.run(stop, options["interval"])
