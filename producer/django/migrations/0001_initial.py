"""The outbox table (``producer/django/models.py``)."""

from __future__ import annotations

from typing import ClassVar

import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):  # type: ignore[misc]  # django ships no type hints
    initial = True
    dependencies: ClassVar[list[tuple[str, str]]] = []

    operations: ClassVar[list[migrations.operations.base.Operation]] = [
        migrations.CreateModel(
            name="OutboxMessage",
            fields=[
                ("id", models.CharField(max_length=128, primary_key=True, serialize=False)),
                ("namespace", models.CharField(max_length=63)),
                ("lane", models.CharField(max_length=16)),
                ("body", models.BinaryField()),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
            ],
            options={"db_table": "mailfleet_outbox"},
        ),
        migrations.AddIndex(
            model_name="outboxmessage",
            index=models.Index(fields=["namespace", "created_at"], name="mailfleet_outbox_order"),
        ),
    ]
