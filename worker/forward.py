"""Forwarding a delivery for the next step of its life: to a delay tier for its next attempt,
or to the dead-letter exchange with its reason. The copy keeps the message's own headers,
drops those the broker added on the way, and lists the recipients still concerned when
they are fewer than the job's. The publisher confirms each copy before the caller acks."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Protocol

import pika

from mailfleet.shared import names as headers
from mailfleet.shared.names import Names
from mailfleet.shared.topology import tier_name
from mailfleet.worker.inbox import Delivery

_MAX_ERROR = 1000


class Publisher(Protocol):
    def publish(
        self, exchange: str, routing_key: str, body: bytes, properties: pika.BasicProperties
    ) -> None: ...


def _own_headers(delivery: Delivery) -> dict[str, Any]:
    """The message's headers without those the broker added on its way through queues."""
    return {k: v for k, v in delivery.headers.items() if not k.startswith(headers.BROKER_HEADERS)}


class Forwarder:
    def __init__(self, publisher: Publisher, names: Names) -> None:
        self._publisher = publisher
        self._names = names

    def to_tier(
        self, delivery: Delivery, delay: float, attempt: int, recipients: list[str] | None
    ) -> None:
        extra = {
            headers.ATTEMPT: attempt,
            headers.TIER: tier_name(delay),
            headers.LANE: delivery.lane.value,
        }
        self._republish(
            delivery, self._names.delay_exchange, delivery.lane.value, extra, recipients
        )

    def dead_letter(
        self, delivery: Delivery, reason: str, error: str, recipients: list[str] | None
    ) -> None:
        extra = {
            headers.REASON: reason,
            headers.ERROR: error[:_MAX_ERROR],
            headers.ATTEMPTS: delivery.attempt,
            headers.FAILED_AT: datetime.now(UTC).isoformat(timespec="seconds"),
            headers.LANE: delivery.lane.value,
        }
        self._republish(
            delivery, self._names.dead_letter_exchange, delivery.lane.value, extra, recipients
        )

    def _republish(
        self,
        delivery: Delivery,
        exchange: str,
        routing_key: str,
        extra: dict[str, Any],
        recipients: list[str] | None,
    ) -> None:
        message_headers = {**_own_headers(delivery), **extra}
        headers.write_recipients(message_headers, recipients)
        original = delivery.properties
        properties = pika.BasicProperties(
            content_type=original.content_type,
            type=original.type,
            message_id=original.message_id,
            timestamp=original.timestamp,
            delivery_mode=headers.PERSISTENT,
            headers=message_headers,
        )
        self._publisher.publish(exchange, routing_key, delivery.body, properties)
