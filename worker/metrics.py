"""Prometheus metrics of one worker, in a registry of its own (several workers may share a
process in tests). Names are part of the contract with deploy/prometheus/alerts.yml."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class WorkerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.paused: frozenset[str] = frozenset()  # as the senders' last batches read it
        self.jobs = Counter(
            "mailfleet_jobs",
            "Jobs settled, by outcome and lane.",
            ["outcome", "lane"],
            registry=self.registry,
        )
        self.dead_letters = Counter(
            "mailfleet_dead_letters",
            "Jobs dead-lettered, by reason.",
            ["reason"],
            registry=self.registry,
        )
        self.retries = Counter(
            "mailfleet_retries",
            "Jobs sent to a delay tier for a retry.",
            ["tier"],
            registry=self.registry,
        )
        self.smtp_replies = Counter(
            "mailfleet_smtp_replies",
            "SMTP replies per recipient, by code (0 = none).",
            ["code"],
            registry=self.registry,
        )
        self.reports = Counter(
            "mailfleet_report",
            "Recipients counted in the delivery reports, by metric, lane and sender domain.",
            ["metric", "lane", "sender_domain"],
            registry=self.registry,
        )
        self.send_seconds = Histogram(
            "mailfleet_send_seconds",
            "Time of one SMTP transaction.",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.token_wait_seconds = Histogram(
            "mailfleet_token_wait_seconds",
            "Time a job waited for rate-limit tokens.",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.dkim_unsigned = Counter(
            "mailfleet_dkim_unsigned",
            "Emails sent without a DKIM signature: their sender domain has no key.",
            registry=self.registry,
        )
        self.unsubscribe_skipped = Counter(
            "mailfleet_unsubscribe_skipped",
            "Emails that would carry List-Unsubscribe but go to several recipients at once.",
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "mailfleet_in_flight", "Jobs a sender is working on.", registry=self.registry
        )
        self.ready = Gauge(
            "mailfleet_ready", "1 when the worker is ready to send.", registry=self.registry
        )
        self.broker_connected = Gauge(
            "mailfleet_broker_connected",
            "1 while consuming from RabbitMQ.",
            registry=self.registry,
        )
        self.redis_connected = Gauge(
            "mailfleet_redis_connected", "1 while Redis answers.", registry=self.registry
        )

    def watch(
        self,
        in_flight: Callable[[], float],
        ready: Callable[[], bool],
        broker: Callable[[], bool],
        redis: Callable[[], bool],
    ) -> None:
        """Gauges read live from the worker at scrape time."""
        self.in_flight.set_function(in_flight)
        self.ready.set_function(lambda: float(ready()))
        self.broker_connected.set_function(lambda: float(broker()))
        self.redis_connected.set_function(lambda: float(redis()))

    def watch_relays(self, states: Callable[[], dict[str, str]]) -> None:
        """``mailfleet_relay_up{relay}``: 1 while the relay's circuit breaker is closed."""
        self.registry.register(
            _GaugeCollector(
                "mailfleet_relay_up",
                "1 while the relay's circuit breaker is closed.",
                "relay",
                lambda: {r: float(s == "closed") for r, s in states().items()},
            )
        )

    def watch_domains(self, factors: Callable[[], dict[str, float]]) -> None:
        """``mailfleet_domain_rate_factor{domain}``: the adaptive factor of each domain limit."""
        self.registry.register(
            _GaugeCollector(
                "mailfleet_domain_rate_factor",
                "Share of a domain's configured rate in force (adaptive).",
                "domain",
                factors,
            )
        )

    def watch_paused(self) -> None:
        """Export :attr:`paused`, the sender domains whose bulk mail the guard holds back."""
        self.registry.register(
            _GaugeCollector(
                "mailfleet_bulk_paused",
                "1 for a sender domain whose bulk mail the complaint guard paused.",
                "sender_domain",
                lambda: dict.fromkeys(self.paused, 1.0),
            )
        )

    def job(self, outcome: str, lane: str) -> None:
        self.jobs.labels(outcome=outcome, lane=lane).inc()

    def report(self, metric: str, lane: str, sender_domain: str, count: int) -> None:
        self.reports.labels(metric=metric, lane=lane, sender_domain=sender_domain).inc(count)


class _GaugeCollector(Collector):
    """A labelled gauge read from the worker at scrape time."""

    def __init__(
        self, name: str, documentation: str, label: str, values: Callable[[], dict[str, float]]
    ) -> None:
        self._name, self._documentation, self._label = name, documentation, label
        self._values = values

    def collect(self) -> Iterable[Metric]:
        gauge = GaugeMetricFamily(self._name, self._documentation, labels=[self._label])
        for key, value in self._values().items():
            gauge.add_metric([key], value)
        yield gauge
