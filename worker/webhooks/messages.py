"""An event message as the webhooks process reads it, and the messages it republishes: to a
delay tier for a retry, or to ``{ns}.events.dead``.

The attempt number and the moment of the first try travel in headers, never in memory, so
any process of the fleet can take the next attempt.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pika

from mailfleet.shared import names as job_headers
from mailfleet.shared import webhooks as hook_headers
from mailfleet.shared.durations import format_duration
from mailfleet.shared.events import EVENT_TYPE, utc_ms
from mailfleet.shared.webhooks import WebhookEndpoint
from mailfleet.worker.webhooks.delivery import MAX_RESPONSE, Attempt

_MAX_ERROR = 1000


def _moment(value: Any) -> datetime | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


@dataclass(frozen=True)
class Incoming:
    """One event message: the payload to POST, its id, which attempt this is and since when
    it is being tried; ``problem`` says why it cannot be sent at all."""

    payload: str
    event_id: str
    attempt: int
    first_try: datetime
    headers: dict[str, Any]
    problem: str | None = None

    def age(self, now: datetime) -> float:
        return max(0.0, (now - self.first_try).total_seconds())


def read_incoming(body: bytes, properties: pika.BasicProperties, now: datetime) -> Incoming:
    """The event in ``body``: the JSON object of ``mailfleet.event.v1``, sent as it is (a
    newer version's fields are forwarded, not refused). The age counts from the
    ``x-mailfleet-webhook-first-try`` header, else from the event's ``occurred_at``."""
    message_headers = dict(properties.headers or {})
    attempt = message_headers.get(hook_headers.ATTEMPT, 1)
    attempt = attempt if isinstance(attempt, int) and attempt >= 1 else 1
    problem = None
    data: Any = None
    try:
        payload = body.decode("utf-8")
        data = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        payload, problem = "", f"not a JSON event: {exc}"
    if problem is None and properties.type not in {None, EVENT_TYPE}:
        problem = f"unknown message type {properties.type!r}, expected {EVENT_TYPE}"
    if problem is None and not isinstance(data, dict):
        problem = "not a JSON object"
    event_id = properties.message_id or (data.get("event_id") if isinstance(data, dict) else None)
    if problem is None and not (isinstance(event_id, str) and event_id):
        problem = "no event_id"
    occurred = data.get("occurred_at") if isinstance(data, dict) else None
    first_try = _moment(message_headers.get(hook_headers.FIRST_TRY)) or _moment(occurred) or now
    return Incoming(
        payload=payload,
        event_id=event_id if isinstance(event_id, str) else "",
        attempt=attempt,
        first_try=first_try,
        headers=message_headers,
        problem=problem,
    )


def _own_headers(incoming: Incoming) -> dict[str, Any]:
    return {
        k: v for k, v in incoming.headers.items() if not k.startswith(job_headers.BROKER_HEADERS)
    }


def _properties(
    original: pika.BasicProperties, message_headers: dict[str, Any]
) -> pika.BasicProperties:
    return pika.BasicProperties(
        content_type=original.content_type or "application/json",
        type=original.type or EVENT_TYPE,
        message_id=original.message_id,
        timestamp=original.timestamp,
        delivery_mode=job_headers.PERSISTENT,
        headers=message_headers,
    )


def retry_properties(
    original: pika.BasicProperties, incoming: Incoming, delay: float
) -> pika.BasicProperties:
    """For the delay tier of ``delay``: attempt + 1, the first try kept."""
    message_headers = {
        **_own_headers(incoming),
        hook_headers.ATTEMPT: incoming.attempt + 1,
        hook_headers.FIRST_TRY: utc_ms(incoming.first_try),
        job_headers.TIER: format_duration(delay),
    }
    return _properties(original, message_headers)


def dead_properties(
    original: pika.BasicProperties,
    incoming: Incoming,
    endpoint: WebhookEndpoint,
    attempt: Attempt,
    reason: str,
) -> pika.BasicProperties:
    """For ``{ns}.events.dead``: which endpoint, why, and what it last answered."""
    message_headers = {k: v for k, v in _own_headers(incoming).items() if k != job_headers.TIER}
    message_headers.update(
        {
            job_headers.REASON: reason,
            job_headers.ERROR: f"{endpoint.name}: {attempt.error}"[:_MAX_ERROR],
            job_headers.ATTEMPTS: incoming.attempt,
            job_headers.FAILED_AT: datetime.now(UTC).isoformat(timespec="seconds"),
            hook_headers.ENDPOINT: endpoint.name,
            hook_headers.ENDPOINT_URL: endpoint.safe_url,
            hook_headers.STATUS: attempt.status,
            hook_headers.RESPONSE: attempt.response[:MAX_RESPONSE],
            hook_headers.FIRST_TRY: utc_ms(incoming.first_try),
        }
    )
    return _properties(original, message_headers)
