"""Prometheus metrics of ``mailfleet inbound``, in a registry of its own. The report counter
has the worker's name and labels, so a query sums what workers and listeners counted."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter


class BounceMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.reports = Counter(
            "mailfleet_report",
            "Recipients counted in the delivery reports, by metric, lane and sender domain.",
            ["metric", "lane", "sender_domain"],
            registry=self.registry,
        )
        self.ignored = Counter(
            "mailfleet_reports_ignored",
            "Messages to the bounce domain that were not acted on, by cause.",
            ["cause"],
            registry=self.registry,
        )
