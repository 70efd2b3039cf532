"""Every endpoint's queue consumed on one pika connection, each on its own channel with
prefetch ``MAILFLEET_WEBHOOK_CONCURRENCY``, and the threads that work on its events.

pika is not thread-safe: the connection lives on the thread that calls :meth:`process`,
and the endpoints' threads hand their acks back with ``add_callback_threadsafe``. An ack
for a message of an earlier, lost connection is dropped: the broker has requeued it.
"""

from __future__ import annotations

import contextlib
import functools
import queue
import threading
from collections.abc import Callable

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel
from pika.spec import Basic

from mailfleet.shared.settings import Settings
from mailfleet.shared.topology import Topology
from mailfleet.shared.webhook_topology import stale_bindings
from mailfleet.shared.webhooks import WebhookNames
from mailfleet.worker.broker.connection import CONNECTION_ERRORS, connect, declare

Job = Callable[[], None]
# Works on one event (body, properties) on one of its endpoint's threads; True to ack it.
Work = Callable[[bytes, pika.BasicProperties], bool]


class Threads:
    """``count`` daemon threads taking jobs from one queue: an endpoint's in-flight budget."""

    def __init__(self, name: str, count: int) -> None:
        self._jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._run, name=f"webhook-{name}-{i}", daemon=True)
            for i in range(count)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, job: Job) -> None:
        self._jobs.put(job)

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            job()

    def stop(self) -> None:
        for _ in self._threads:
            self._jobs.put(None)


class EndpointConsumers:
    def __init__(
        self,
        settings: Settings,
        topology: Topology,
        work: dict[str, Work],
        stopping: threading.Event,
    ) -> None:
        self._settings = settings
        self._topology = topology
        self._work = work
        self._stopping = stopping
        self._hooks = WebhookNames(settings.names)
        self._threads = {name: Threads(name, settings.webhook_concurrency) for name in work}
        self._connection: pika.BlockingConnection | None = None
        self._consumers: list[tuple[BlockingChannel, str]] = []
        self._generation = 0
        self._lock = threading.Lock()
        self._in_flight = dict.fromkeys(work, 0)

    @property
    def connected(self) -> bool:
        return (
            self._connection is not None
            and self._connection.is_open
            and bool(self._consumers)
            and all(channel.is_open for channel, _ in self._consumers)
        )

    def in_flight(self) -> dict[str, int]:
        with self._lock:
            return dict(self._in_flight)

    def connect(self) -> None:
        """Connect, declare the topology (unbinding kinds no endpoint wants any more), and
        consume every endpoint's queue."""
        connection = self._connection = connect(self._settings)
        declare(connection, self._topology)
        channel = connection.channel()
        names = self._settings.names
        for queue_name, key in stale_bindings(names, self._settings.webhooks):
            channel.queue_unbind(queue_name, names.events_exchange, key)
        channel.close()
        self._generation += 1
        self._consumers = []
        for name in self._work:
            channel = connection.channel()
            channel.basic_qos(prefetch_count=self._settings.webhook_concurrency)
            on_message = functools.partial(self._on_message, name, self._generation)
            tag = channel.basic_consume(self._hooks.queue(name), on_message)
            self._consumers.append((channel, tag))

    def process(self, seconds: float) -> None:
        """Run pika's I/O loop (deliveries, acks, heartbeats) for about ``seconds``."""
        if not self.connected or self._connection is None:
            raise pika.exceptions.ChannelClosed(0, "a consuming channel is closed")
        self._connection.process_data_events(time_limit=seconds)  # type: ignore[arg-type]

    def stop_consuming(self) -> None:
        with contextlib.suppress(*CONNECTION_ERRORS):
            for channel, consumer_tag in self._consumers:
                if channel.is_open:
                    channel.basic_cancel(consumer_tag)

    def close(self) -> None:
        connection, self._connection, self._consumers = self._connection, None, []
        if connection is not None and connection.is_open:
            with contextlib.suppress(*CONNECTION_ERRORS):
                connection.close()

    def stop_threads(self) -> None:
        for threads in self._threads.values():
            threads.stop()

    def _on_message(  # noqa: PLR0917 (pika's callback signature plus the bound arguments)
        self,
        name: str,
        generation: int,
        channel: BlockingChannel,
        method: Basic.Deliver,
        properties: pika.BasicProperties,
        body: bytes,
    ) -> None:
        assert method.delivery_tag is not None
        tag = method.delivery_tag
        with self._lock:
            self._in_flight[name] += 1
        self._threads[name].submit(
            lambda: self._run(name, generation, channel, tag, properties, body)
        )

    def _run(  # noqa: PLR0917
        self,
        name: str,
        generation: int,
        channel: BlockingChannel,
        tag: int,
        properties: pika.BasicProperties,
        body: bytes,
    ) -> None:
        """On one of the endpoint's threads: work on the event, then queue its ack."""
        ack = False
        try:
            ack = self._work[name](body, properties)
        finally:
            if not ack:
                self._stopping.wait(1.0)  # not settled: requeue it, but no hot loop
            connection = self._connection
            if connection is not None:
                settle = functools.partial(self._settle, generation, channel, tag, ack)
                with contextlib.suppress(*CONNECTION_ERRORS):
                    connection.add_callback_threadsafe(settle)
            with self._lock:
                self._in_flight[name] -= 1

    def _settle(self, generation: int, channel: BlockingChannel, tag: int, ack: bool) -> None:
        """On pika's thread. A message of an earlier connection was requeued already."""
        if generation != self._generation or not channel.is_open:
            return
        with contextlib.suppress(*CONNECTION_ERRORS):
            if ack:
                channel.basic_ack(tag)
            else:
                channel.basic_nack(tag, requeue=True)
