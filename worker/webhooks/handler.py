"""What becomes of one event for one endpoint, on one of that endpoint's threads: POST it,
then ack it, or republish it (a retry, or a dead letter) with confirms and only then ack.

It returns whether to ack; False (requeue) only when the broker refused the republish,
so the event is tried again rather than lost.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Protocol

import httpx
import pika
import structlog

from mailfleet.shared.errors import MailfleetError
from mailfleet.shared.names import Names
from mailfleet.shared.webhooks import WebhookEndpoint, WebhookNames
from mailfleet.worker.webhooks import delivery
from mailfleet.worker.webhooks.delivery import Attempt, Outcome, Step
from mailfleet.worker.webhooks.messages import (
    Incoming,
    dead_properties,
    read_incoming,
    retry_properties,
)
from mailfleet.worker.webhooks.metrics import WebhookMetrics
from mailfleet.worker.webhooks.signer import Signer

log = structlog.get_logger("mailfleet.webhooks")


class Publisher(Protocol):
    def publish(
        self, exchange: str, routing_key: str, body: bytes, properties: pika.BasicProperties
    ) -> None: ...


class Clients:
    """One ``httpx.Client`` per thread (connection pools are per thread, never shared)."""

    def __init__(self, timeout: float) -> None:
        self._timeout = timeout
        self._local = threading.local()
        self._lock = threading.Lock()
        self._all: list[httpx.Client] = []

    def get(self) -> httpx.Client:
        client: httpx.Client | None = getattr(self._local, "client", None)
        if client is None:
            client = httpx.Client(
                timeout=self._timeout,
                follow_redirects=False,
                headers={"user-agent": "mailfleet-webhooks"},
            )
            self._local.client = client
            with self._lock:
                self._all.append(client)
        return client

    def close(self) -> None:
        with self._lock:
            clients, self._all = self._all, []
        for client in clients:
            client.close()


class EventHandler:
    def __init__(
        self,
        endpoint: WebhookEndpoint,
        names: Names,
        publisher: Publisher,
        clients: Clients,
        metrics: WebhookMetrics,
        *,
        delays: list[float],
        max_age: float,
        closed: threading.Event | None = None,
    ) -> None:
        self.endpoint = endpoint
        self._closed = closed or threading.Event()
        self._hooks = WebhookNames(names)
        self._signer = Signer(endpoint.secrets)
        self._publisher = publisher
        self._clients = clients
        self._metrics = metrics
        self._delays = delays
        self._max_age = max_age

    def handle(self, body: bytes, properties: pika.BasicProperties) -> bool:
        """Deliver one event; True to ack it, False to requeue it."""
        now = datetime.now(UTC)
        incoming = read_incoming(body, properties, now)
        if incoming.problem is not None:
            attempt = Attempt(Outcome.FINAL, 0, f"invalid event: {incoming.problem}")
            step = Step(delivery.DEAD, reason="invalid")
        else:
            attempt = self._post(incoming)
            step = delivery.next_step(
                attempt.outcome, incoming.attempt, incoming.age(now), self._delays, self._max_age
            )
        if self._closed.is_set() and step.action != delivery.ACK:
            return False  # shut down while posting: the broker has this event back already
        try:
            return self._settle(body, properties, incoming, attempt, step)
        except MailfleetError as exc:
            log.error(
                "webhook_republish_failed",
                endpoint=self.endpoint.name,
                event_id=incoming.event_id,
                error=str(exc),
            )
            return False

    def _post(self, incoming: Incoming) -> Attempt:
        headers = self._signer.headers(incoming.event_id, incoming.payload)
        attempt = delivery.post(self._clients.get(), self.endpoint.url, incoming.payload, headers)
        self._metrics.seconds.labels(endpoint=self.endpoint.name).observe(attempt.seconds)
        if self.endpoint.url in attempt.error:  # an error that quotes the URL: credentials
            attempt = Attempt(
                attempt.outcome,
                attempt.status,
                attempt.error.replace(self.endpoint.url, self.endpoint.safe_url),
                attempt.response,
                attempt.seconds,
            )
        return attempt

    def _settle(
        self,
        body: bytes,
        properties: pika.BasicProperties,
        incoming: Incoming,
        attempt: Attempt,
        step: Step,
    ) -> bool:
        name = self.endpoint.name
        if step.action == delivery.ACK:
            self._metrics.settled(name, "delivered")
            log.debug("webhook_delivered", endpoint=name, event_id=incoming.event_id)
            return True
        if step.action == delivery.RETRY:
            self._publisher.publish(
                self._hooks.delay_exchange,
                self._hooks.routing_key(name),
                body,
                retry_properties(properties, incoming, step.delay),
            )
            self._metrics.settled(name, "retried")
            log.info(
                "webhook_retry",
                endpoint=name,
                event_id=incoming.event_id,
                attempt=incoming.attempt,
                error=attempt.error,
                retry_in_s=step.delay,
            )
            return True
        self._publisher.publish(
            self._hooks.exchange,
            self._hooks.dead_key,
            body,
            dead_properties(properties, incoming, self.endpoint, attempt, step.reason),
        )
        self._metrics.settled(name, "dead")
        log.warning(
            "webhook_dead",
            endpoint=name,
            event_id=incoming.event_id,
            attempts=incoming.attempt,
            reason=step.reason,
            error=attempt.error,
        )
        return True
