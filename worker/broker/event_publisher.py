"""Publishing a batch's events with publisher confirms, on a connection of the sender
thread's own: every event of the batch is written, then one wait covers all their confirms
(pika's blocking channel would wait for each in turn).

An event exchange with no queue bound drops the events, and still confirms them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import pika
import pika.exceptions
from pika.exchange_type import ExchangeType
from pika.spec import Basic

from mailfleet.shared.errors import BrokerBlocked, PublishNacked
from mailfleet.shared.events import EVENT_TYPE, Event
from mailfleet.shared.settings import Settings
from mailfleet.worker.broker.connection import (
    CONNECTION_ERRORS,
    broker_errors,
    coalesce_output,
    connect,
)
from mailfleet.worker.broker.publish_frames import publish_frames
from mailfleet.worker.broker.pushback import Pushback


class EventPublisher:
    def __init__(
        self,
        settings: Settings,
        attempts: int = 3,
        timeout: float = 10.0,
        pushback: Pushback | None = None,
    ) -> None:
        self._settings = settings
        self._pushback = pushback
        self._exchange = settings.names.events_exchange
        self._attempts = attempts
        self._timeout = timeout
        self._connection: pika.BlockingConnection | None = None
        self._channel: Any = None  # pika's asynchronous channel under the blocking one
        self._published = 0  # delivery tags given out on the current channel
        self._unconfirmed: set[int] = set()
        self._nacked = False

    def publish(self, events: list[Event]) -> None:
        """Publish ``events`` and return once the broker confirmed every one; on a lost
        connection they are published again on a new one (a consumer may see one twice,
        with the same id)."""
        if not events:
            return
        with broker_errors("publishing events failed"):
            for attempt in range(1, self._attempts + 1):
                try:
                    self._publish_once(events)
                    return
                except CONNECTION_ERRORS:
                    self.close()
                    if attempt == self._attempts:
                        raise

    def close(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None and connection.is_open:
            with contextlib.suppress(*CONNECTION_ERRORS):
                connection.close()

    def _publish_once(self, events: list[Event]) -> None:
        channel = self._open()
        if not channel.is_open:
            raise pika.exceptions.ChannelWrongStateError("the events channel is closed")
        connection = channel.connection
        frames: list[bytes] = []
        for event in events:
            frames += publish_frames(
                channel.channel_number,
                self._exchange,
                event.routing_key,
                content_type="application/json",
                message_type=EVENT_TYPE,
                message_id=event.event_id,
                body=event.to_wire(),
                max_body_frame=connection._body_max_length,
            )
            self._published += 1
            self._unconfirmed.add(self._published)
        # What channel.basic_publish does after building its frames, for the whole batch.
        connection._output_marshaled_frames(frames)
        coalesce_output(self._connection)
        self._wait()

    def _wait(self) -> None:
        """Run the connection's I/O until every event is confirmed (or one is refused).
        pika's blocking adapter has no public call for "wait for these confirms": its
        ``process_data_events`` would sit out its whole time limit, since the confirms go
        to our callback and not through it. So this drives its I/O loop the way its own
        blocking calls do, with a timer that ends a wait the broker never answers."""
        self._run_until(lambda: not self._unconfirmed or self._nacked)
        if self._nacked:
            self._nacked = False
            raise PublishNacked("the broker refused an event", [])
        if self._unconfirmed:
            reason = self._pushback.reason if self._pushback is not None else None
            if reason is not None:  # a broker alarm: a new connection would wait just the same
                self.close()
                raise BrokerBlocked(reason, self._timeout)
            raise pika.exceptions.AMQPConnectionError("no confirm for the events in time")

    def _open(self) -> Any:
        if self._connection is None or not self._connection.is_open or self._channel is None:
            self.close()
            self._connection = connect(self._settings, heartbeat=0)
            if self._pushback is not None:
                self._pushback.watch(self._connection)
            blocking = self._connection.channel()
            # Declared again on every new connection (idempotent): an exchange deleted while
            # workers run must not hold every batch's acks back until they restart.
            blocking.exchange_declare(self._exchange, ExchangeType("topic"), durable=True)
            # The asynchronous channel: publishes without waiting, confirms to our callback.
            self._channel = blocking._impl  # type: ignore[attr-defined]
            self._published = 0
            self._unconfirmed.clear()
            self._nacked = False
            ready: list[bool] = []
            self._channel.confirm_delivery(
                ack_nack_callback=self._on_confirm, callback=lambda _frame: ready.append(True)
            )
            self._run_until(lambda: bool(ready))
            if not ready:
                raise pika.exceptions.AMQPConnectionError("confirm mode not acknowledged in time")
        return self._channel

    def _run_until(self, done: Callable[[], bool]) -> None:
        """Drive the connection's I/O until ``done()``, or for at most the timeout."""
        connection: Any = self._connection
        timed_out: list[bool] = []
        timer = connection._impl.ioloop.call_later(self._timeout, lambda: timed_out.append(True))
        try:
            connection._flush_output(lambda: done() or bool(timed_out))
        finally:
            connection._impl.ioloop.remove_timeout(timer)

    def _on_confirm(self, frame: Any) -> None:
        method = frame.method
        if isinstance(method, Basic.Nack):
            self._nacked = True
        tag = int(method.delivery_tag)
        if method.multiple:
            self._unconfirmed = {pending for pending in self._unconfirmed if pending > tag}
        else:
            self._unconfirmed.discard(tag)
