"""Prometheus metrics of the webhooks process, in a registry of its own."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

OUTCOMES = ("delivered", "retried", "dead")
_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class WebhookMetrics:
    def __init__(self, endpoints: Iterable[str]) -> None:
        self.registry = CollectorRegistry()
        self.deliveries = Counter(
            "mailfleet_webhook_deliveries",
            "Events settled per endpoint: delivered, retried (sent to a delay tier) or dead.",
            ["endpoint", "outcome"],
            registry=self.registry,
        )
        self.seconds = Histogram(
            "mailfleet_webhook_seconds",
            "Time of one POST to an endpoint, response or not.",
            ["endpoint"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.ready = Gauge(
            "mailfleet_ready",
            "1 when the process consumes and can deliver.",
            registry=self.registry,
        )
        self.broker_connected = Gauge(
            "mailfleet_broker_connected", "1 while consuming from RabbitMQ.", registry=self.registry
        )
        for endpoint in endpoints:  # every series exists from the start, at 0
            for outcome in OUTCOMES:
                self.deliveries.labels(endpoint=endpoint, outcome=outcome)
            self.seconds.labels(endpoint=endpoint)

    def settled(self, endpoint: str, outcome: str) -> None:
        self.deliveries.labels(endpoint=endpoint, outcome=outcome).inc()

    def watch(
        self,
        ready: Callable[[], bool],
        broker: Callable[[], bool],
        in_flight: Callable[[], dict[str, int]],
    ) -> None:
        """Gauges read at scrape time; ``mailfleet_webhook_in_flight{endpoint}`` among them."""
        self.ready.set_function(lambda: float(ready()))
        self.broker_connected.set_function(lambda: float(broker()))
        self.registry.register(_InFlight(in_flight))


class _InFlight(Collector):
    def __init__(self, values: Callable[[], dict[str, int]]) -> None:
        self._values = values

    def collect(self) -> Iterable[Metric]:
        gauge = GaugeMetricFamily(
            "mailfleet_webhook_in_flight",
            "Events of an endpoint being POSTed or settled now.",
            labels=["endpoint"],
        )
        for endpoint, count in self._values().items():
            gauge.add_metric([endpoint], float(count))
        yield gauge
