"""Publishing from the worker (retries to delay tiers, dead letters) with publisher confirms.

A dedicated connection, shared by the sender threads under a lock. Every publish returns
only once the broker confirmed it; the caller acks the original message only after that
(confirm-then-ack), so a crash in between duplicates a message, never loses one.

A broker alarm blocks the connection: a publish then waits at most
``MAILFLEET_PUBLISH_TIMEOUT`` and raises :class:`BrokerBlocked` (the original stays
unacked and goes back), and the :class:`Pushback` it leaves set holds the senders until
:meth:`Republisher.probe` finds publishing open again.
"""

from __future__ import annotations

import contextlib
import threading
import time

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel

from mailfleet.shared.errors import BrokerBlocked, BrokerError
from mailfleet.shared.settings import Settings
from mailfleet.worker.broker.connection import CONNECTION_ERRORS, broker_errors, connect
from mailfleet.worker.broker.pushback import Pushback

_PROBE_EVERY = 1.0  # seconds between two probes of a blocked broker
_PROBE_TIMEOUT = 1.0  # how long a probe waits while the broker blocks it


class Republisher:
    def __init__(
        self, settings: Settings, attempts: int = 3, pushback: Pushback | None = None
    ) -> None:
        self._settings = settings
        self._attempts = attempts
        self.pushback = pushback or Pushback()
        self._next_probe = 0.0
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
                except pika.exceptions.ConnectionBlockedTimeout as exc:
                    # Not a lost connection: a new one would be blocked just the same.
                    self._reset()
                    reason = self.pushback.reason or "blocked"
                    self.pushback.blocked(reason)
                    raise BrokerBlocked(reason, self._settings.publish_timeout) from exc
                except CONNECTION_ERRORS:
                    self._reset()
                    if attempt == self._attempts:
                        raise

    def probe(self) -> None:
        """While the pushback is set, at most every second: publish a message that goes
        nowhere on a connection of its own (the broker returns it, unroutable, once it
        reads again) and clear the pushback if it went through."""
        now = time.monotonic()
        if self.pushback.reason is None or now < self._next_probe:
            return
        if not self._lock.acquire(blocking=False):
            return  # another sender probes, or publishes
        try:
            self._next_probe = now + _PROBE_EVERY
            if self._probe_once():
                self.pushback.cleared()
        finally:
            self._lock.release()

    def _probe_once(self) -> bool:
        try:
            connection = connect(self._settings, heartbeat=0, blocked_timeout=_PROBE_TIMEOUT)
        except BrokerError:
            return False
        try:
            channel = connection.channel()
            channel.confirm_delivery()
            nowhere = f"{self._settings.namespace}.probe.nowhere"  # no queue has this name
            channel.basic_publish("", nowhere, b"", pika.BasicProperties(), mandatory=True)
        except (pika.exceptions.UnroutableError, pika.exceptions.NackError):
            return True  # the broker read it and answered: publishing is open
        except CONNECTION_ERRORS:
            return False
        finally:
            with contextlib.suppress(*CONNECTION_ERRORS):
                if connection.is_open:
                    connection.close()
        return True

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
            self.pushback.watch(self._connection)
            self._channel = self._connection.channel()
            self._channel.confirm_delivery()
        return self._channel

    def _reset(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None and connection.is_open:
            with contextlib.suppress(*CONNECTION_ERRORS):
                connection.close()
