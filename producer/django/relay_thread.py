"""The outbox relay on a daemon thread of the Django process, for projects that run no
``manage.py mailfleet_relay`` (``MAILFLEET_OUTBOX_RELAY_THREAD = True``)."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from mailfleet.producer.django.backend import backend_config
from mailfleet.producer.django.outbox import OutboxRelay


@dataclass(frozen=True)
class RelayThread:
    thread: threading.Thread
    stop: threading.Event

    def join(self, timeout: float) -> None:
        self.stop.set()
        self.thread.join(timeout)


def start_relay_thread(interval: float = 1.0) -> RelayThread:
    config = backend_config()
    relay = OutboxRelay(config.settings, using=config.using)
    stop = threading.Event()
    thread = threading.Thread(
        target=relay.run, args=(stop, interval), name="mailfleet-outbox-relay", daemon=True
    )
    thread.start()
    return RelayThread(thread, stop)
