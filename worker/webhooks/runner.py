"""The ``mailfleet webhooks`` process::

    {ns}.webhooks.<a> ──► channel a (prefetch N) ──► N threads of a ──► POST a ──┐
    {ns}.webhooks.<b> ──► channel b (prefetch N) ──► N threads of b ──► POST b ──┤
                 ▲                                                               │
                 └──────── ack (after any retry or dead letter is confirmed) ◄───┘

N is ``MAILFLEET_WEBHOOK_CONCURRENCY``: the requests in flight per endpoint, and the
messages it holds unacked. A slow or dead endpoint ties up only its own N; the others go
on. Nothing is held in memory that a restart would lose (the attempt number travels in a
header), so any number of these processes can run side by side.

On SIGTERM it stops consuming, lets the requests in flight finish (up to
``MAILFLEET_SHUTDOWN_GRACE``) and their acks go out; anything still unacked is requeued.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType

import pika
import structlog

from mailfleet.shared.errors import BrokerError, ConfigError
from mailfleet.shared.settings import Settings
from mailfleet.shared.webhook_topology import webhook_topology_of
from mailfleet.worker.broker.connection import CONNECTION_ERRORS
from mailfleet.worker.broker.republisher import Republisher
from mailfleet.worker.health import HealthFactory, on_metrics_port
from mailfleet.worker.webhooks.consumer import EndpointConsumers
from mailfleet.worker.webhooks.handler import Clients, EventHandler
from mailfleet.worker.webhooks.metrics import WebhookMetrics

log = structlog.get_logger("mailfleet.webhooks")
_RECONNECTABLE: tuple[type[Exception], ...] = (BrokerError, *CONNECTION_ERRORS)


class WebhookService:
    def __init__(self, settings: Settings, *, health: HealthFactory | None = None) -> None:
        if not settings.webhooks:
            raise ConfigError("MAILFLEET_WEBHOOKS: no endpoint configured, nothing to deliver to")
        self._settings = settings
        self._health = health or on_metrics_port(settings.metrics_port)
        self._stopping = threading.Event()
        self._closed = threading.Event()  # set once the connection is closed for good
        self.metrics = WebhookMetrics(endpoint.name for endpoint in settings.webhooks)
        self._republisher = Republisher(settings)
        self._clients = Clients(settings.webhook_timeout)
        self._handlers = {
            endpoint.name: EventHandler(
                endpoint,
                settings.names,
                self._republisher,
                self._clients,
                self.metrics,
                delays=settings.webhook_retry_delays,
                max_age=settings.webhook_max_age,
                closed=self._closed,
            )
            for endpoint in settings.webhooks
        }
        self._consumers = EndpointConsumers(
            settings,
            webhook_topology_of(settings),
            {name: self._guarded(handler) for name, handler in self._handlers.items()},
            self._stopping,
        )
        self.metrics.watch(
            ready=lambda: self.ready,
            broker=lambda: self._consumers.connected,
            in_flight=self._consumers.in_flight,
        )

    @staticmethod
    def _guarded(handler: EventHandler) -> Callable[[bytes, pika.BasicProperties], bool]:
        def work(body: bytes, properties: pika.BasicProperties) -> bool:
            try:
                return handler.handle(body, properties)
            except Exception:  # a bug must not kill the endpoint's thread: requeue the event
                log.exception("webhook_handler_failed", endpoint=handler.endpoint.name)
                return False

        return work

    def readiness(self) -> dict[str, bool]:
        """What ``/readyz`` reports: connected, every endpoint's channel open, consuming."""
        return {"broker": self._consumers.connected, "consuming": not self._stopping.is_set()}

    @property
    def ready(self) -> bool:
        return all(self.readiness().values())

    def stop(self, signum: int | None = None, frame: FrameType | None = None) -> None:
        """Ask the process to drain and exit (the SIGTERM / SIGINT handler)."""
        if not self._stopping.is_set():
            log.info("webhooks_stopping", signal=signum)
        self._stopping.set()

    def run(self) -> int:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self.stop)
            signal.signal(signal.SIGINT, self.stop)
        health = self._health(self.metrics.registry, self.readiness)  # a busy port fails first
        if health is not None:
            health.start()
            log.info("health_server_started", port=health.port)
        try:
            self._connect(first=True)
            log.info(
                "webhooks_started",
                namespace=self._settings.namespace,
                concurrency_per_endpoint=self._settings.webhook_concurrency,
                endpoints=[
                    {"name": name, "url": h.endpoint.safe_url, "events": h.endpoint.events}
                    for name, h in self._handlers.items()
                ],
            )
            while not self._stopping.is_set():
                try:
                    self._consumers.process(0.2)
                except CONNECTION_ERRORS as exc:
                    log.error("broker_connection_lost", error=repr(exc))
                    self._consumers.close()
                    self._connect(first=False)
        finally:
            self._shutdown()
            if health is not None:
                health.stop()
        return 0

    def _connect(self, *, first: bool) -> None:
        backoff = 0.5
        while not self._stopping.is_set():
            try:
                self._consumers.connect()
            except _RECONNECTABLE as exc:
                if first:
                    raise
                self._consumers.close()
                log.warning("broker_reconnect_failed", error=str(exc), retry_in_s=backoff)
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, 10.0)
            else:
                if not first:
                    log.info("broker_reconnected")
                return

    def _pump(self, seconds: float) -> None:
        try:
            self._consumers.process(seconds)
        except CONNECTION_ERRORS:
            time.sleep(seconds)

    def _shutdown(self) -> None:
        self._stopping.set()
        deadline = time.monotonic() + self._settings.shutdown_grace
        try:
            self._consumers.stop_consuming()
            while sum(self._consumers.in_flight().values()) and time.monotonic() < deadline:
                self._pump(0.05)
            self._pump(0.05)  # the last acks
        finally:
            self._closed.set()
            self._consumers.close()
            self._consumers.stop_threads()
            with contextlib.suppress(Exception):
                self._republisher.close()
            self._clients.close()
        log.info("webhooks_stopped", unfinished=sum(self._consumers.in_flight().values()))
