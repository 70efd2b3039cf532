"""``mailfleet dlq ... --queue events``: the events that a webhook endpoint finally refused or
never took, in ``{ns}.events.dead``.

Each is read as a :class:`DeadLetter` (id = event id, lane and recipient domain from the
event, the error naming the endpoint), so ``list``, ``show``, ``purge``, ``export`` and
every filter work on them unchanged. ``replay`` moves an event back to the queue of the
endpoint that refused it (``{ns}.webhooks`` exchange, key ``endpoint.<name>``) as a first
attempt with a fresh ``MAILFLEET_WEBHOOK_MAX_AGE``; confirm-then-ack, like a job's replay.
"""

from __future__ import annotations

import json
import time
from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any

from kombu.connection import Connection

from mailfleet.producer.confirms import Outgoing
from mailfleet.producer.ops.dlq.letter import (
    DeadLetter,
    Selection,
    failed_at_of,
    failure_of,
    header_text,
    last_death,
)
from mailfleet.producer.ops.dlq.queue import DeadLetterQueue, Reader
from mailfleet.producer.ops.dlq.replay import ConfirmedMover
from mailfleet.producer.ops.dlq.report import ReplayReport
from mailfleet.shared import names as headers
from mailfleet.shared import webhooks as hook_headers
from mailfleet.shared.errors import MailfleetError
from mailfleet.shared.events import EVENT_TYPE, utc_ms
from mailfleet.shared.names import Names
from mailfleet.shared.webhooks import WebhookNames

_DEAD_HEADERS = frozenset(
    {
        headers.REASON,
        headers.ERROR,
        headers.ATTEMPTS,
        headers.FAILED_AT,
        headers.TIER,
        hook_headers.ATTEMPT,
        hook_headers.FIRST_TRY,
        hook_headers.ENDPOINT,
        hook_headers.ENDPOINT_URL,
        hook_headers.STATUS,
        hook_headers.RESPONSE,
    }
)


def endpoint_of(letter: DeadLetter, names: Names) -> str | None:
    """The endpoint an event died at: its header, or the queue that dead-lettered it."""
    name = header_text(letter.headers.get(hook_headers.ENDPOINT))
    if name:
        return name
    death = last_death(letter.headers)
    return WebhookNames(names).endpoint_of_queue(header_text(death.get("queue"))) if death else None


def read_event_letter(message: Any, names: Names) -> DeadLetter:
    """A :class:`DeadLetter` from a py-amqp message of ``{ns}.events.dead``."""
    properties = dict(message.properties)
    message_headers = dict(properties.pop("application_headers", None) or {})
    body = message.body if isinstance(message.body, bytes) else str(message.body).encode()
    try:
        event = json.loads(body)
    except ValueError:
        event = None
    event = event if isinstance(event, dict) else {}
    death = last_death(message_headers)
    reason, error = failure_of(message_headers, death)
    attempts = message_headers.get(headers.ATTEMPTS)
    recipient = event.get("recipient")
    return DeadLetter(
        delivery_tag=int(message.delivery_tag),
        id=header_text(properties.get("message_id")) or header_text(event.get("event_id")),
        reason=reason,
        error=error,
        attempts=attempts if isinstance(attempts, int) else None,
        lane=header_text(event.get("lane")),
        recipients=[recipient] if isinstance(recipient, str) else [],
        recipients_header=False,
        failed_at=failed_at_of(message_headers, death),
        headers=message_headers,
        properties=properties,
        body=body,
        job=None,
        problem=f"a webhook event ({header_text(event.get('event')) or 'unreadable'}), not a job",
    )


def event_reader(names: Names, endpoints: Collection[str] = ()) -> Reader:
    """Reads events; with ``endpoints``, leaves out those of any other endpoint."""

    def read(message: Any) -> DeadLetter | None:
        letter = read_event_letter(message, names)
        if endpoints and endpoint_of(letter, names) not in endpoints:
            return None
        return letter

    return read


def replay_event_message(letter: DeadLetter, endpoint: str, names: Names) -> Outgoing:
    """The event of ``letter`` as a first attempt at ``endpoint``, its age starting now."""
    hooks = WebhookNames(names)
    message_headers = {
        name: value
        for name, value in letter.headers.items()
        if name not in _DEAD_HEADERS and not name.startswith(headers.BROKER_HEADERS)
    }
    message_headers[hook_headers.ATTEMPT] = 1
    message_headers[hook_headers.FIRST_TRY] = utc_ms()
    return Outgoing(
        exchange=hooks.exchange,
        routing_key=hooks.routing_key(endpoint),
        body=letter.body,
        message_id=letter.id,
        properties={
            "content_type": "application/json",
            "type": EVENT_TYPE,
            "delivery_mode": headers.PERSISTENT,
            "timestamp": int(time.time()),
            "application_headers": message_headers,
        },
    )


def replay_events(
    queue: DeadLetterQueue,
    connection: Connection,
    names: Names,
    selection: Selection,
    *,
    limit: int | None = None,
    rate: float | None = None,
    dry_run: bool = False,
) -> ReplayReport:
    """Move matching dead events back to their endpoints' queues. An event whose endpoint
    is unknown is ``invalid``; one whose endpoint's queue is gone is ``failed`` (both stay)."""
    now = datetime.now(UTC)
    with queue.browse() as scan:
        report = ReplayReport(total=0, dry_run=dry_run)
        mover = ConfirmedMover(connection, scan, report, batch=100, rate=rate, confirm_timeout=30.0)
        handled = 0
        try:
            for letter in scan:
                if not selection.matches(letter, now):
                    continue
                endpoint = endpoint_of(letter, names)
                if endpoint is None or not letter.id:
                    report.invalid.append(letter.id)
                    continue
                handled += 1
                if dry_run:
                    report.replayed.append(letter.id)
                elif not mover.add(letter, replay_event_message(letter, endpoint, names)):
                    break
                if limit is not None and handled >= limit:
                    break
            mover.flush()
        except MailfleetError as exc:
            report.error = str(exc)
        finally:
            mover.close()
        report.total = scan.total
    return report
