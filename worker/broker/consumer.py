"""Consuming both lane queues with pika on the main thread.

pika is not thread-safe: the connection lives on the thread that runs :meth:`process`, and
sender threads settle messages through ``add_callback_threadsafe``. A settle for a delivery
from an earlier, lost connection is dropped: the broker has already requeued that message.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable
from typing import Any

import pika
import pika.exceptions
import structlog
from pika.adapters.blocking_connection import BlockingChannel
from pika.spec import Basic

from mailfleet.shared.job import Lane
from mailfleet.shared.settings import Settings
from mailfleet.shared.topology import Topology
from mailfleet.worker.broker.connection import (
    CONNECTION_ERRORS,
    coalesce_output,
    connect,
    declare,
)
from mailfleet.worker.inbox import Delivery

log = structlog.get_logger("mailfleet.worker")


class LaneConsumer:
    def __init__(self, settings: Settings, on_delivery: Callable[[Delivery], None]) -> None:
        self._settings = settings
        self._on_delivery = on_delivery
        self._connection: pika.BlockingConnection | None = None
        self._channel: BlockingChannel | None = None
        self._consumer_tags: list[str] = []
        self.generation = 0
        self._settle_lock = threading.Lock()
        self._settles: list[tuple[int, int, bool]] = []  # (generation, tag, ack or requeue)
        self._flush_pending = False
        self._unsettled: set[int] = set()  # tags delivered and not yet settled (pika's thread)

    @property
    def connected(self) -> bool:
        """Connected and consuming: the broker may close the channel alone (consumer timeout,
        an unknown delivery tag) while the connection stays up."""
        return (
            self._connection is not None
            and self._connection.is_open
            and self._channel is not None
            and self._channel.is_open
        )

    def connect(self, topology: Topology) -> None:
        """Connect, declare ``topology``, and consume every lane with the configured prefetch."""
        with self._settle_lock:  # settles queued on a lost connection are void
            self._settles.clear()
            self._flush_pending = False
        self._unsettled.clear()
        self._connection = connect(self._settings)
        declare(self._connection, topology)
        self._channel = self._connection.channel()
        self._channel.basic_qos(prefetch_count=self._settings.prefetch)
        self.generation += 1
        names = self._settings.names
        self._consumer_tags = [
            self._channel.basic_consume(
                names.lane_queue(lane), functools.partial(self._on_message, lane, self.generation)
            )
            for lane in Lane
        ]

    def process(self, seconds: float) -> None:
        """Run pika's I/O loop (deliveries, settles, heartbeats) for about ``seconds``."""
        if not self.connected or self._connection is None:
            # pika does not raise when only the channel was closed; reconnect all the same.
            raise pika.exceptions.ChannelClosed(0, "the consuming channel is closed")
        # pika takes float seconds; its stubs say int.
        self._connection.process_data_events(time_limit=seconds)  # type: ignore[arg-type]

    def stop_consuming(self) -> None:
        if self._channel is not None and self._channel.is_open:
            for tag in self._consumer_tags:
                self._channel.basic_cancel(tag)
        self._consumer_tags = []

    def close(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None and connection.is_open:
            with contextlib.suppress(*CONNECTION_ERRORS):
                connection.close()

    def queue_depth(self, queue: str) -> int:
        """Ready messages in ``queue`` (passive declare on a short-lived channel)."""
        assert self._connection is not None
        channel = self._connection.channel()
        try:
            return channel.queue_declare(queue, passive=True).method.message_count or 0
        finally:
            if channel.is_open:
                channel.close()

    # Settling, callable from any thread.
    def ack(self, delivery: Delivery) -> None:
        self._queue_settle(delivery, ack=True)

    def requeue(self, delivery: Delivery) -> None:
        self._queue_settle(delivery, ack=False)

    def ack_many(self, deliveries: list[Delivery]) -> None:
        self._queue_settles(deliveries, ack=True)

    def _queue_settle(self, delivery: Delivery, *, ack: bool) -> None:
        self._queue_settles([delivery], ack=ack)

    def is_current(self, delivery: Delivery) -> bool:
        """Whether ``delivery`` came on the connection open now. One that came on a lost one
        has been requeued by the broker already: its tag means nothing on this connection,
        and sending it could mail it twice."""
        return delivery.generation == self.generation

    def _queue_settles(self, deliveries: list[Delivery], *, ack: bool) -> None:
        """Queue settles for the connection's thread. One wake-up of pika's loop settles
        every one queued meanwhile, instead of one wake-up per message."""
        connection = self._connection
        generation = self.generation
        current = [d for d in deliveries if self.is_current(d)]
        if connection is None or not current:
            return
        with self._settle_lock:
            self._settles += [(generation, d.delivery_tag, ack) for d in current]
            if self._flush_pending:
                return
            self._flush_pending = True
        try:
            connection.add_callback_threadsafe(self._flush_settles)
        except CONNECTION_ERRORS as exc:
            log.warning("settle_dropped", reason="connection lost", error=repr(exc))

    def _flush_settles(self) -> None:
        """On pika's thread: requeue what is to be requeued, and ack the rest with as few
        frames as possible: one cumulative ack up to the first tag still being worked on."""
        with self._settle_lock:
            settles, self._settles = self._settles, []
            self._flush_pending = False
        channel = self._channel
        if channel is None or not channel.is_open:
            return
        current = [(tag, ack) for generation, tag, ack in settles if generation == self.generation]
        acks = {tag for tag, ack in current if ack}
        # pika's asynchronous channel under the blocking one: the blocking channel's
        # basic_ack runs the I/O loop until that one frame is written, a send() per ack
        # (most acks of a batch cannot be cumulative while other senders hold lower tags).
        # Queued here, the frames go out in one write when this callback returns to the loop.
        frames: Any = getattr(channel, "_impl", channel)
        for tag, ack in current:
            if not ack:
                frames.basic_nack(tag, requeue=True)
                self._unsettled.discard(tag)
        still_held = min((tag for tag in self._unsettled if tag not in acks), default=None)
        below = [tag for tag in acks if still_held is None or tag < still_held]
        if below:
            frames.basic_ack(max(below), multiple=True)
        for tag in acks.difference(below):
            frames.basic_ack(tag)
        self._unsettled -= acks
        coalesce_output(self._connection)

    def _on_message(  # noqa: PLR0917 (pika's callback signature plus the bound lane)
        self,
        lane: Lane,
        generation: int,
        channel: BlockingChannel,
        method: Basic.Deliver,
        properties: pika.BasicProperties,
        body: bytes,
    ) -> None:
        assert method.delivery_tag is not None
        self._unsettled.add(method.delivery_tag)
        self._on_delivery(Delivery(lane, method.delivery_tag, generation, body, properties))
