"""The outbox: one row per email job, written in the caller's transaction
(``MAILFLEET_DJANGO_OUTBOX = True``), moved to RabbitMQ by the relay (``outbox.py``)."""

from __future__ import annotations

from typing import ClassVar

from django.db import models
from django.utils import timezone


class OutboxMessage(models.Model):  # type: ignore[misc]  # django ships no type hints
    # The job id: a relay that dies after the confirm and before the delete publishes the
    # same id again, and the worker's sent ledger stops a second email.
    id = models.CharField(primary_key=True, max_length=128)
    namespace = models.CharField(max_length=63)
    lane = models.CharField(max_length=16)
    body = models.BinaryField()  # the job on the wire (mailfleet.email.v1 JSON)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        app_label = "mailfleet"
        db_table = "mailfleet_outbox"
        indexes: ClassVar[list[models.Index]] = [
            models.Index(fields=["namespace", "created_at"], name="mailfleet_outbox_order")
        ]

    def __str__(self) -> str:
        return f"outbox {self.id} ({self.lane})"
