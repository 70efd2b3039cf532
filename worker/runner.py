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
from collections.abc import Callable
from types import FrameType

import structlog

from mailfleet.shared.errors import BrokerError, RedisUnavailable
from mailfleet.shared.job import Lane
from mailfleet.shared.redis_client import REDIS_DOWN, make_redis
from mailfleet.shared.sent_ledger import SentLedger
from mailfleet.shared.settings import Settings
from mailfleet.shared.suppression import SuppressionList
from mailfleet.shared.topology import build_topology
from mailfleet.worker.batch_commit import BatchCommit, HeldAcks, WriteAheadLedger
from mailfleet.worker.broker.connection import CONNECTION_ERRORS
from mailfleet.worker.broker.consumer import LaneConsumer
from mailfleet.worker.broker.republisher import Republisher
from mailfleet.worker.dispatch import Dispatcher
from mailfleet.worker.health import HealthFactory, HealthServer, on_metrics_port
from mailfleet.worker.inbox import Inbox
from mailfleet.worker.limits.adaptive import AdaptiveLimits
from mailfleet.worker.limits.admission import Admission
from mailfleet.worker.limits.buckets import RateLimiter
from mailfleet.worker.metrics import WorkerMetrics
from mailfleet.worker.pipeline import Pipeline
from mailfleet.worker.recipients import RecipientFilter
from mailfleet.worker.redis_gate import RedisGate
from mailfleet.worker.retry import RetryPolicy
from mailfleet.worker.settle import Settler
from mailfleet.worker.smtp.relay_pool import RelayPool
from mailfleet.worker.smtp.transport import SmtpTransport, Transport

log = structlog.get_logger("mailfleet.worker")
TransportFactory = Callable[[], Transport]
_IDLE_CHECKS_NEEDED = 2
_MAX_BATCH = 8
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
        self._transport_factory = transport_factory or (
            lambda: SmtpTransport(
                settings.smtp_timeout,
                ca_file=settings.smtp_ca_file,
                username=settings.smtp_username,
                password=settings.smtp_password,
            )
        )
        self._relays = RelayPool(
            settings.smtp_relays, settings.breaker_failures, settings.breaker_cooldown
        )
        self._stopping = threading.Event()
        self._inbox = Inbox()
        self._consumer = LaneConsumer(settings, self._inbox.put)
        self._republisher = Republisher(settings)
        self._redis = make_redis(settings)
        self.metrics = WorkerMetrics()
        self._gate = RedisGate(self._stopping)
        ledger = SentLedger(self._redis, settings.names, settings.sent_ttl)
        self._suppression = SuppressionList(self._redis, settings.names)
        self._adaptive = AdaptiveLimits(self._redis, settings.names, set(settings.domain_limits))
        limiter = RateLimiter(self._redis, settings)
        admission = (
            Admission(limiter, self._gate, self._inbox, self.metrics, self._stopping)
            if limiter.configured
            else None
        )
        self._recipients = RecipientFilter(self._redis, ledger, self._suppression)
        self._dispatcher = Dispatcher(self._relays, admission, self._consumer.is_current)
        # Enough for one Redis round trip to pay for several emails, few enough that the
        # prefetched messages still spread over the senders.
        self._batch = max(1, min(_MAX_BATCH, settings.prefetch // settings.concurrency))
        self._topology = build_topology(
            settings.names, settings.retry_delays, settings.delivery_limit
        )
        self._redis_up = True
        self._idle_checks = 0
        self._next_idle_check = 0.0
        self.metrics.watch(
            in_flight=lambda: self._inbox.in_flight,
            ready=lambda: self.ready,
            broker=lambda: self._consumer.connected,
            redis=lambda: self._redis_up and self._gate.healthy,
        )
        self.metrics.watch_domains(self._adaptive.factors)
        self.metrics.watch_relays(lambda: {k: str(v) for k, v in self._relays.states().items()})

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
        """Ping Redis every couple of seconds so /readyz knows before a job does."""
        while not self._stopping.wait(2.0):
            try:
                self._redis.ping()
            except REDIS_DOWN:
                self._redis_up = False
                continue
            self._redis_up = True
            self._gate.recovered()
            with contextlib.suppress(RedisUnavailable):
                self._adaptive.refresh()

    def _connect(self, *, first: bool) -> None:
        backoff = 0.5
        while not self._stopping.is_set():
            try:
                self._consumer.connect(self._topology)
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

    def _sender(self) -> tuple[Pipeline, BatchCommit]:
        """One sender thread's pipeline: its own ledger connection and held acks."""
        commit = BatchCommit(
            WriteAheadLedger(self._redis, self._settings.names, self._settings.sent_ttl),
            HeldAcks(self._consumer),
        )
        settler = Settler(
            settings=self._settings,
            acker=commit.acks,
            publisher=self._republisher,
            ledger=commit.ledger,
            suppression=self._suppression,
            metrics=self.metrics,
            adaptive=self._adaptive,
        )
        pipeline = Pipeline(
            limits=self._settings.job_limits,
            retry=RetryPolicy.from_settings(self._settings),
            recipients=self._recipients,
            dispatcher=self._dispatcher,
            settler=settler,
            gate=self._gate,
            metrics=self.metrics,
        )
        return pipeline, commit

    def _send_loop(self) -> None:
        transport = self._transport_factory()
        transport.warm_up(self._settings.smtp_relays)
        pipeline, commit = self._sender()
        try:
            while not (self._stopping.is_set() and self._inbox.waiting == 0):
                batch = self._inbox.take_batch(self._batch, timeout=0.2)
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
            self._republisher.close()
            self._redis.close()
        log.info("worker_stopped", unfinished=self._inbox.in_flight)
