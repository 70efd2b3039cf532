"""`mailfleet webhooks` against real RabbitMQ and real local HTTP endpoints: fan-out by
kind, signatures, retries through the delay tiers, per-endpoint isolation, metrics."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from mailfleet.producer.devtools.sink import free_port
from mailfleet.producer.publisher import Producer
from mailfleet.shared.events import EventKind
from mailfleet.shared.settings import Settings
from tests.integration.helpers import WorkerThread, http_get, make_job, wait_until
from tests.integration.relays import ScriptedReplies
from tests.integration.webhook_endpoints import (
    WebhookNamespace,
    WebhooksThread,
    always,
    make_event,
    publish_events,
    queue_depth,
)


@pytest.fixture
def hooks(amqp_url: str, redis_server_url: str, namespace: str) -> Iterator[WebhookNamespace]:
    base = Settings(
        amqp_url=amqp_url,
        redis_url=redis_server_url,
        namespace=namespace,
        webhook_retry_delays=[1.0, 2.0],
        webhook_timeout=10.0,
        shutdown_grace=5.0,
        metrics_port=0,
    )
    space = WebhookNamespace(base)
    yield space
    space.close()


def _sample(text: str, line_start: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(line_start + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


class TestFanOut:
    def test_each_endpoint_gets_the_kinds_it_asked_for_once_signed(
        self, hooks: WebhookNamespace
    ) -> None:
        """Three endpoints with different filters; two secrets on one: every request has a
        valid signature for each secret of its endpoint, and webhook-id is the event id."""
        delivered_only = hooks.endpoint(secrets=2, events=["delivered"])
        everything = hooks.endpoint(events=["*"])
        failures = hooks.endpoint(events=["bounced", "deferred"])
        settings = hooks.settings()
        kinds = [EventKind.DELIVERED] * 3 + [EventKind.BOUNCED] * 2
        kinds += [EventKind.DEFERRED, EventKind.SUPPRESSED]
        events = [make_event(n, kind) for n, kind in enumerate(kinds)]
        ids = {kind: {e.event_id for e in events if e.event is kind} for kind in EventKind}
        publish_events(settings, events)

        with WebhooksThread(settings):
            assert wait_until(
                lambda: (
                    (len(delivered_only.received), len(everything.received)) == (3, 7)
                    and len(failures.received) == 3
                ),
                timeout=20,
            ), (delivered_only.received, everything.received, failures.received)
            time.sleep(0.5)  # nothing more arrives

        assert dict.fromkeys(ids[EventKind.DELIVERED], 1) == dict(delivered_only.delivered())
        assert {e.event_id: 1 for e in events} == dict(everything.delivered())
        assert dict.fromkeys(ids[EventKind.BOUNCED] | ids[EventKind.DEFERRED], 1) == dict(
            failures.delivered()
        )
        for endpoint in (delivered_only, everything, failures):
            endpoint.verify_all()
        request = delivered_only.received[0]
        assert "application/json" == request.headers["content-type"]
        assert 2 == len(request.headers["webhook-signature"].split(" "))


class TestRetries:
    def test_an_endpoint_failing_for_a_while_gets_every_event_once(
        self, hooks: WebhookNamespace
    ) -> None:
        """500 for the first 25 requests, then 200: every event arrives, none twice with a 2xx.
        The ledger: expected, received (2xx), duplicates, dead."""
        flaky = hooks.endpoint(
            script=lambda number, event, body: (500, b"busy") if number <= 25 else (200, b"")
        )
        settings = hooks.settings()
        expected = set(publish_events(settings, [make_event(n) for n in range(10)]))

        with WebhooksThread(settings) as running:
            assert wait_until(lambda: set(flaky.delivered()) == expected, timeout=60), len(
                flaky.received
            )
            time.sleep(1.0)
            metrics = running.service.metrics
        name = settings.webhooks[0].name

        delivered = flaky.delivered()
        ledger = {
            "expected": len(expected),
            "received": len(delivered),
            "duplicates": sum(count - 1 for count in delivered.values()),
            "dead": queue_depth(settings, settings.names.events_dead_queue),
            "requests": len(flaky.received),
        }
        print("ledger", ledger)
        assert {"expected": 10, "received": 10, "duplicates": 0, "dead": 0} == {
            k: v for k, v in ledger.items() if k != "requests"
        }
        assert 25 == sum(1 for r in flaky.received if r.status == 500)
        flaky.verify_all()
        retried = metrics.deliveries.labels(endpoint=name, outcome="retried")._value.get()
        assert 25.0 == retried

    def test_a_refused_connection_is_retried(self, hooks: WebhookNamespace) -> None:
        """An endpoint that is not listening yet: the event waits in the delay tiers."""
        later = hooks.endpoint()
        later.close()  # nothing listens on its port now
        settings = hooks.settings()
        [event_id] = publish_events(settings, [make_event(1)])
        with WebhooksThread(settings) as running:
            name = settings.webhooks[0].name
            retried = running.service.metrics.deliveries.labels(endpoint=name, outcome="retried")
            assert wait_until(lambda: retried._value.get() >= 1, timeout=10)
        assert 0 == queue_depth(settings, settings.names.events_dead_queue)
        assert {event_id} == _ids_in_queues(settings)


def _ids_in_queues(settings: Settings) -> set[str]:
    """Ids of the events waiting in the endpoint queues and delay tiers (taken, not acked)."""
    from mailfleet.producer.connection import open_connection
    from mailfleet.shared.webhook_topology import webhook_topology_of

    found: set[str] = set()
    connection = open_connection(settings)
    try:
        channel = connection.channel()
        deadline = time.monotonic() + 10
        while not found and time.monotonic() < deadline:
            for queue in webhook_topology_of(settings).queues:
                while (message := channel.basic_get(queue.name)) is not None:
                    found.add(str(message.properties["message_id"]))
            time.sleep(0.1)
        channel.close()
    finally:
        connection.release()
    return found


class TestIsolation:
    def test_a_slow_endpoint_does_not_hold_up_a_fast_one(self, hooks: WebhookNamespace) -> None:
        """5 s per request at one endpoint: the other gets all of its events while the slow
        one is still on its first ones."""
        slow = hooks.endpoint(delay=5.0, name="slow")
        fast = hooks.endpoint(name="fast")
        settings = hooks.settings(webhook_concurrency=2, shutdown_grace=1.0)
        expected = set(publish_events(settings, [make_event(n) for n in range(20)]))

        with WebhooksThread(settings):
            assert wait_until(lambda: set(fast.delivered()) == expected, timeout=20)
            slow_done = len(slow.snapshot())
            slow_waiting = queue_depth(settings, f"{settings.namespace}.webhooks.slow")

        print(
            "fast got",
            len(fast.delivered()),
            "slow had answered",
            slow_done,
            "and had",
            slow_waiting,
            "waiting",
        )
        assert slow_done < len(expected)
        assert slow_waiting > 0


class TestMetricsAndProbes:
    def test_metrics_healthz_and_readyz(self, hooks: WebhookNamespace) -> None:
        ok = hooks.endpoint(name="ok")
        refuses = hooks.endpoint(name="refuses", script=always(422, b"no"))
        port = free_port()
        settings = hooks.settings(metrics_port=port)
        publish_events(settings, [make_event(n) for n in range(3)])

        with WebhooksThread(settings):
            assert wait_until(lambda: http_get(port, "/healthz")[0] == 200, timeout=10)
            assert wait_until(lambda: len(ok.received) == 3 and len(refuses.received) == 3, 20)

            def scraped(name: str) -> float | None:
                return _sample(http_get(port, "/metrics")[1], name)

            delivered = 'mailfleet_webhook_deliveries_total{endpoint="ok",outcome="delivered"}'
            dead = 'mailfleet_webhook_deliveries_total{endpoint="refuses",outcome="dead"}'
            assert wait_until(lambda: scraped(delivered) == 3.0, timeout=5)
            assert wait_until(lambda: scraped(dead) == 3.0, timeout=5)
            assert 0.0 == scraped(
                'mailfleet_webhook_deliveries_total{endpoint="ok",outcome="retried"}'
            )
            assert 3.0 == scraped('mailfleet_webhook_seconds_count{endpoint="ok"}')
            assert 1.0 == scraped("mailfleet_ready")
            assert (200, "broker ok\nconsuming ok\n") == http_get(port, "/readyz")


class TestWithWorkers:
    def test_a_job_sent_by_a_worker_reaches_the_endpoint_as_events(
        self, settings: Settings, producer: Producer, replies: ScriptedReplies
    ) -> None:
        """End to end: a job with one good and one unknown recipient, a real worker, and
        `webhooks`: the endpoint gets `delivered`, `bounced` and `dead_lettered`, signed."""
        space = WebhookNamespace(settings)
        try:
            endpoint = space.endpoint(events=["delivered", "bounced", "dead_lettered"])
            hooked = space.settings()
            replies.script("gone@example.org", "550 5.1.1 no such user")
            producer.publish(make_job(1, to=["ann@example.org", "gone@example.org"]))
            worker = WorkerThread(hooked)
            with WebhooksThread(hooked):
                assert wait_until(lambda: len(endpoint.delivered()) == 3, timeout=30), (
                    endpoint.received
                )
            assert 0 == worker.stop()
            kinds = sorted(
                (json.loads(r.body)["event"], json.loads(r.body)["recipient"])
                for r in endpoint.received
            )
            assert [
                ("bounced", "gone@example.org"),
                ("dead_lettered", "gone@example.org"),
                ("delivered", "ann@example.org"),
            ] == kinds
            endpoint.verify_all()
        finally:
            space.close()
