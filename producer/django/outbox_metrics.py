"""The outbox's depth and age as Prometheus gauges, read from the database at scrape time:
``mailfleet_outbox_depth`` (rows waiting) and ``mailfleet_outbox_age_seconds`` (how long the
oldest has waited; 0 when empty). ``mailfleet_relay`` serves them on
``MAILFLEET_METRICS_PORT``; a project with a registry of its own can register the collector."""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import Count, Min
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from mailfleet.producer.django.models import OutboxMessage


class OutboxCollector(Collector):
    def __init__(self, namespace: str, using: str | None = None) -> None:
        self._namespace = namespace
        self._using = using

    def collect(self) -> Iterable[Metric]:
        found = (
            OutboxMessage.objects.using(self._using)
            .filter(namespace=self._namespace)
            .aggregate(depth=Count("id"), oldest=Min("created_at"))
        )
        oldest = found["oldest"]
        age = (timezone.now() - oldest).total_seconds() if oldest is not None else 0.0
        yield GaugeMetricFamily(
            "mailfleet_outbox_depth", "Outbox rows waiting for the relay.", value=found["depth"]
        )
        yield GaugeMetricFamily(
            "mailfleet_outbox_age_seconds",
            "How long the oldest outbox row has waited (0 when empty).",
            value=max(0.0, age),
        )
