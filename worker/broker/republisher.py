"""Publishing from the worker (retries to delay tiers, dead letters) with publisher confirms.

A dedicated connection, shared by the sender threads under a lock. Every publish returns
only once the broker confirmed it; the caller acks the original message only after that
(confirm-then-ack), so a crash in between duplicates a message, never loses one.
"""

from __future__ import annotations

import contextlib
import threading

import pika
from pika.adapters.blocking_connection import BlockingChannel

from mailfleet.shared.settings import Settings
from mailfleet.worker.broker.connection import CONNECTION_ERRORS, broker_errors, connect


class Republisher:
    def __init__(self, settings: Settings, attempts: int = 3) -> None:
        self._settings = settings
        self._attempts = attempts
        self._lock = threading.Lock()
        self._connection: pika.BlockingConnection | None = None
        self._channel: BlockingChannel | None = None

    def publish(
        self, exchange: str, routing_key: str, body: bytes, properties: pika.BasicProperties
    ) -> None:
        """Publish and wait for the broker's confirm; raise our own error if it never comes."""
        message_id = properties.message_id or ""
        with (
            self._lock,
            broker_errors("republishing failed", exchange=exchange, message_id=message_id),
        ):
            for attempt in range(1, self._attempts + 1):
                try:
                    self._open_channel().basic_publish(
                        exchange, routing_key, body, properties, mandatory=True
                    )
                    return
                except CONNECTION_ERRORS:
                    self._reset()
                    if attempt == self._attempts:
                        raise

    def close(self, timeout: float = 5.0) -> None:
        """Close, unless a publish still holds the connection after ``timeout`` (then the
        process exit closes the socket; unconfirmed originals stay unacked and return)."""
        if self._lock.acquire(timeout=timeout):
            try:
                self._reset()
            finally:
                self._lock.release()

    def _open_channel(self) -> BlockingChannel:
        if self._channel is None or not self._channel.is_open:
            # No heartbeats: this connection idles between retries and is only ever used
            # from inside publish(); a dead one shows up as an error and is re-made.
            self._connection = connect(self._settings, heartbeat=0)
            self._channel = self._connection.channel()
            self._channel.confirm_delivery()
        return self._channel

    def _reset(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None and connection.is_open:
            with contextlib.suppress(*CONNECTION_ERRORS):
                connection.close()
