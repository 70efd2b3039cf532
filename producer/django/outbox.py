"""The transactional outbox (``MAILFLEET_DJANGO_OUTBOX = True``): mail as rows in the
caller's transaction, moved to RabbitMQ by a relay.

``send_messages`` writes one :class:`OutboxMessage` per job and does no broker I/O, so a
rollback leaves no mail and a broker that is down at commit loses none. The relay claims
rows with ``SELECT … FOR UPDATE SKIP LOCKED`` (two relays never take the same row),
publishes them with confirms, and deletes them in the same transaction, after the
confirms: a relay that dies in between leaves the rows, the next one publishes the same
job ids again, and the worker's sent ledger stops a second email. SQLite has no row locks
(Django leaves ``FOR UPDATE`` out there): fine for development, with one relay.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import structlog
from django.db import DatabaseError, close_old_connections, connections, transaction

from mailfleet.producer.django.models import OutboxMessage
from mailfleet.producer.publisher import Producer, wire_message
from mailfleet.shared.errors import MailfleetError
from mailfleet.shared.job import EmailJob, Lane
from mailfleet.shared.settings import Settings

log = structlog.get_logger("mailfleet.django")
_MAX_BACKOFF = 30.0


def write_outbox(jobs: Sequence[EmailJob], namespace: str, using: str | None) -> None:
    """One row per job, in the current transaction of ``using`` (or at once in autocommit)."""
    rows = [
        OutboxMessage(id=job.id, namespace=namespace, lane=job.lane.value, body=job.to_wire())
        for job in jobs
    ]
    OutboxMessage.objects.using(using).bulk_create(rows)


class OutboxRelay:
    """Moves one namespace's outbox rows to RabbitMQ; ``relay_once`` for a batch, ``run``
    until stopped. Owns one :class:`Producer`, opened on first use."""

    def __init__(self, settings: Settings, *, using: str | None = None, batch: int = 500) -> None:
        self._settings = settings
        self._using = using or "default"
        self._batch = batch
        self._producer: Producer | None = None

    def relay_once(self) -> int:
        """Claim up to a batch of rows, publish them, delete them once confirmed; return how
        many moved. A failure raises and rolls back: the rows stay for the next try."""
        exchange = self._settings.names.exchange
        with transaction.atomic(using=self._using):
            claimed = (
                OutboxMessage.objects.using(self._using)
                .select_for_update(skip_locked=True)
                .filter(namespace=self._settings.namespace)
                .order_by("created_at")[: self._batch]
            )
            rows = list(claimed)
            if not rows:
                return 0
            messages = [
                wire_message(
                    bytes(row.body),
                    row.id,
                    Lane(row.lane),
                    exchange,
                    timestamp=row.created_at.timestamp(),
                )
                for row in rows
            ]
            self._open().publish_messages(messages)
            OutboxMessage.objects.using(self._using).filter(
                pk__in=[row.id for row in rows]
            ).delete()
        log.debug("outbox_relayed", count=len(rows), namespace=self._settings.namespace)
        return len(rows)

    def drain(self) -> int:
        """Relay until the outbox is empty; return how many moved."""
        moved = 0
        while count := self.relay_once():
            moved += count
        return moved

    def run(self, stop: threading.Event, interval: float = 1.0) -> None:
        """Relay until ``stop`` is set: a full batch goes on at once, else after ``interval``;
        a broker or database failure is logged and tried again, backing off."""
        backoff = interval
        try:
            while not stop.is_set():
                try:
                    moved = self.relay_once()
                except (MailfleetError, DatabaseError) as exc:
                    log.warning("outbox_relay_failed", error=str(exc), retry_in_s=backoff)
                    self.close()
                    close_old_connections()
                    stop.wait(backoff)
                    backoff = min(backoff * 2, _MAX_BACKOFF)
                    continue
                backoff = interval
                if moved < self._batch:
                    stop.wait(interval)
        finally:
            self.close()
            connections[self._using].close()  # this thread's, which nobody else closes

    def close(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            producer.close()

    def _open(self) -> Producer:
        if self._producer is None:
            self._producer = Producer(self._settings)
        return self._producer
