"""The worker process: one consumer thread (pika), N sender threads, clean shutdown.

::

    RabbitMQ ──► LaneConsumer (main thread) ──► Inbox (transactional first)
                        ▲                          │
                        └── ack / requeue ◄── sender threads: Pipeline.handle_batch(deliveries)

On SIGTERM it stops consuming, hands back what no sender has started, lets the senders
finish what they hold (up to ``MAILFLEET_SHUTDOWN_GRACE``), then closes; anything still
unacked is requeued by the broker. In ``burst`` mode it exits once the lane and delay
queues are empty and nothing is in flight.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from types import FrameType

import structlog

from mailfleet.shared.errors import BrokerError, RedisUnavailable
from mailfleet.shared.job import Lane
from mailfleet.shared.redis_client import REDIS_DOWN
from mailfleet.shared.settings import Settings
from mailfleet.shared.worker_beats import BEAT_SECONDS, WorkerBeat, beat_pipeline, worker_name
from mailfleet.worker import wiring
from mailfleet.worker.broker.connection import CONNECTION_ERRORS
from mailfleet.worker.health import HealthFactory, HealthServer, on_metrics_port
from mailfleet.worker.wiring import TransportFactory

log = structlog.get_logger("mailfleet.worker")
_IDLE_CHECKS_NEEDED = 2
_RECONNECTABLE: tuple[type[Exception], ...] = (BrokerError, *CONNECTION_ERRORS)


class Worker:
    def __init__(
        self,
        settings: Settings,
        *,
        burst: bool = False,
        transport_factory: TransportFactory | None = None,
        health: HealthFactory | None = None,
    ) -> None:
        self._settings = settings
        self._health = health or on_metrics_port(settings.metrics_port)
        self._burst = burst
        self._parts = parts = wiring.build(settings, transport_factory)
        self._stopping = parts.stopping
        self._inbox = parts.inbox
        self._consumer = parts.consumer
        self._redis = parts.redis
        self._gate = parts.gate
        self.metrics = parts.metrics
        self._redis_up = True
        self._idle_checks = 0
        self._next_idle_check = 0.0
        self.name = worker_name()
        self.metrics.watch(
            in_flight=lambda: self._inbox.in_flight,
            ready=lambda: self.ready,
            broker=lambda: self._consumer.connected,
            redis=lambda: self._redis_up and self._gate.healthy,
        )
        self.metrics.watch_domains(parts.adaptive.factors)
        self.metrics.watch_paused()
        self.metrics.watch_relays(lambda: {k: str(v) for k, v in parts.relays.states().items()})

    def readiness(self) -> dict[str, bool]:
        """What ``/readyz`` reports: every check must hold for the worker to take traffic."""
        return {
            "broker": self._consumer.connected,
            "redis": self._redis_up and self._gate.healthy,
            "consuming": not self._stopping.is_set(),
        }

    @property
    def ready(self) -> bool:
        return all(self.readiness().values())

    def stop(self, signum: int | None = None, frame: FrameType | None = None) -> None:
        """Ask the worker to drain and exit (the SIGTERM / SIGINT handler)."""
        if not self._stopping.is_set():
            log.info("worker_stopping", signal=signum)
        self._stopping.set()

    def run(self) -> int:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self.stop)
            signal.signal(signal.SIGINT, self.stop)
        health = self._start_health_server()  # a busy port fails before anything is consumed
        try:
            self._connect(first=True)
        except BaseException:
            if health is not None:
                health.stop()
            raise
        watcher = threading.Thread(target=self._watch_redis, name="redis-watch", daemon=True)
        watcher.start()
        senders = [
            threading.Thread(target=self._send_loop, name=f"sender-{i}", daemon=True)
            for i in range(self._settings.concurrency)
        ]
        for sender in senders:
            sender.start()
        log.info(
            "worker_started",
            namespace=self._settings.namespace,
            concurrency=self._settings.concurrency,
            prefetch=self._settings.prefetch,
            relays=[relay.name for relay in self._settings.smtp_relays],
            burst=self._burst,
        )
        try:
            while not self._stopping.is_set():
                try:
                    self._consumer.process(0.2)
                    if self._burst and self._drained():
                        log.info("burst_drained")
                        break
                except CONNECTION_ERRORS as exc:
                    log.error("broker_connection_lost", error=repr(exc))
                    self._consumer.close()
                    self._inbox.drain()  # the broker requeues these; their tags are now stale
                    self._connect(first=False)
        finally:
            self._shutdown(senders)
            if health is not None:
                health.stop()
        return 0

    def _start_health_server(self) -> HealthServer | None:
        server = self._health(self.metrics.registry, self.readiness)
        if server is None:
            return None
        log.info("health_server_started", port=server.port)
        return server.start()

    def _watch_redis(self) -> None:
        """Ping Redis every couple of seconds so /readyz knows before a job does; the same
        round trip writes the worker's heartbeat (readiness, breakers) for the dashboard."""
        while not self._stopping.wait(BEAT_SECONDS):
            try:
                beat_pipeline(self._redis, self._settings.names, self._beat()).execute()
            except REDIS_DOWN:
                self._redis_up = False
                continue
            self._redis_up = True
            self._gate.recovered()
            with contextlib.suppress(RedisUnavailable):
                self._parts.adaptive.refresh()

    def _beat(self) -> WorkerBeat:
        states = self._parts.relays.states()
        checks = self.readiness()
        return WorkerBeat(
            worker=self.name,
            ready=all(checks.values()),
            checks=checks,
            breakers={relay: str(state) for relay, state in states.items()},
            at=time.time(),
        )

    def _connect(self, *, first: bool) -> None:
        backoff = 0.5
        while not self._stopping.is_set():
            try:
                self._consumer.connect(self._parts.topology)
            except _RECONNECTABLE as exc:
                if first:
                    raise
                self._consumer.close()  # a half-opened connection must not linger
                log.warning("broker_reconnect_failed", error=str(exc), retry_in_s=backoff)
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, 10.0)
            else:
                if not first:
                    log.info("broker_reconnected")
                return

    def _send_loop(self) -> None:
        transport = self._parts.transports()
        transport.warm_up(self._settings.smtp_relays)
        pipeline, commit = wiring.sender(self._parts)
        try:
            while not (self._stopping.is_set() and self._inbox.waiting == 0):
                batch = self._inbox.take_batch(self._parts.batch, timeout=0.2)
                if not batch:
                    continue
                # Parked before a reconnect: the broker has requeued those already.
                current = [d for d in batch if self._consumer.is_current(d)]
                try:
                    pipeline.handle_batch(current, transport)
                finally:
                    commit.commit()
                    self._inbox.done(len(batch))
        finally:
            commit.close()
            transport.close()

    def _drained(self) -> bool:
        """Burst mode: nothing waiting here or in the lane and delay queues, twice in a row."""
        now = time.monotonic()
        if now < self._next_idle_check:
            return False
        self._next_idle_check = now + 0.3
        if self._inbox.waiting or self._inbox.in_flight:
            self._idle_checks = 0
            return False
        names = self._settings.names
        queues = [names.lane_queue(lane) for lane in Lane]
        queues += [names.delay_queue(delay) for delay in self._settings.retry_delays]
        if any(self._consumer.queue_depth(queue) for queue in queues):
            self._idle_checks = 0
            return False
        self._idle_checks += 1
        return self._idle_checks >= _IDLE_CHECKS_NEEDED

    def _pump(self, seconds: float) -> None:
        """Let pika settle what the senders queued; without a broker, just let time pass (the
        broker requeues whatever stays unacked)."""
        try:
            self._consumer.process(seconds)
        except CONNECTION_ERRORS:
            time.sleep(seconds)

    def _shutdown(self, senders: list[threading.Thread]) -> None:
        self._stopping.set()
        deadline = time.monotonic() + self._settings.shutdown_grace
        try:
            with contextlib.suppress(*CONNECTION_ERRORS):
                self._consumer.stop_consuming()
            for delivery in self._inbox.drain():
                self._consumer.requeue(delivery)
            while self._inbox.in_flight and time.monotonic() < deadline:
                self._pump(0.05)
            for sender in senders:
                sender.join(timeout=max(0.0, deadline - time.monotonic()))
            self._pump(0.05)  # flush the acks the senders queued last
        finally:
            self._consumer.close()
            self._parts.republisher.close()
            self._redis.close()
        log.info("worker_stopped", unfinished=self._inbox.in_flight)
