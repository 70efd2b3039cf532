"""Events an endpoint refused land in ``{ns}.events.dead`` with the endpoint, its status and
its answer; ``mailfleet dlq ... --queue events`` lists, replays and purges them."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from mailfleet.shared import names as job_headers
from mailfleet.shared import webhooks as hook_headers
from mailfleet.shared.cli import build_parser
from mailfleet.shared.settings import Settings
from tests.integration.helpers import wait_until
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
    space = WebhookNamespace(
        Settings(
            amqp_url=amqp_url,
            redis_url=redis_server_url,
            namespace=namespace,
            webhook_retry_delays=[1.0],
            shutdown_grace=5.0,
            metrics_port=0,
        )
    )
    yield space
    space.close()


def dlq(settings: Settings, *argv: str) -> int:
    """Run ``mailfleet dlq ARGV`` in this process with ``settings``."""
    args = build_parser("dlq").parse_args(["dlq", *argv])
    return int(args.handler(args, settings))


class TestRefusedEvents:
    def test_a_400_goes_dead_with_its_answer_then_replay_delivers_it(
        self, hooks: WebhookNamespace, capsys: pytest.CaptureFixture[str]
    ) -> None:
        refusing = hooks.endpoint(name="crm", script=always(400, b'{"error": "unknown field"}'))
        healthy = hooks.endpoint(name="audit")
        settings = hooks.settings()
        dead_queue = settings.names.events_dead_queue
        ids = publish_events(settings, [make_event(n) for n in range(3)])

        with WebhooksThread(settings):
            assert wait_until(lambda: queue_depth(settings, dead_queue) == 3, timeout=20)
            assert wait_until(lambda: len(healthy.delivered()) == 3, timeout=10)
        assert 3 == len(refusing.received)  # refused once each: a 400 is not retried

        capsys.readouterr()
        assert 0 == dlq(settings, "list", "--queue", "events", "--json")
        rows = json.loads(capsys.readouterr().out)
        assert sorted(ids) == sorted(row["id"] for row in rows)
        assert {("permanent", "crm: HTTP 400", "bulk", 1)} == {
            (row["reason"], row["error"], row["lane"], row["attempts"]) for row in rows
        }
        assert 0 == dlq(settings, "export", "--queue", "events", "--id", ids[0])
        [record] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        letter_headers = record["headers"]
        assert {
            hook_headers.ENDPOINT: "crm",
            hook_headers.ENDPOINT_URL: refusing.url,
            hook_headers.STATUS: 400,
            hook_headers.RESPONSE: '{"error": "unknown field"}',
            job_headers.REASON: "permanent",
        }.items() <= letter_headers.items()
        assert ids[0] == json.loads(record["body"])["event_id"]

        # Another endpoint's filter leaves them out; the jobs' queue is not touched.
        assert 0 == dlq(settings, "list", "--queue", "events", "--endpoint", "audit", "--json")
        assert [] == json.loads(capsys.readouterr().out)

        refusing.script = always(200)
        assert 0 == dlq(settings, "replay", "--queue", "events", "--id", ids[0], "--json")
        report = json.loads(capsys.readouterr().out)
        assert ([ids[0]], 2) == (report["replayed"], report["left"])
        with WebhooksThread(settings):
            assert wait_until(lambda: ids[0] in refusing.delivered(), timeout=20)
            assert 0 == dlq(settings, "replay", "--queue", "events", "--endpoint", "crm")
            assert wait_until(lambda: set(refusing.delivered()) == set(ids), timeout=20)
            time.sleep(0.5)
        assert dict.fromkeys(ids, 1) == dict(refusing.delivered())
        assert dict.fromkeys(ids, 1) == dict(healthy.delivered())  # replay went to crm alone
        assert 0 == queue_depth(settings, dead_queue)
        refusing.verify_all()

    def test_purge_removes_dead_events_for_good(
        self, hooks: WebhookNamespace, capsys: pytest.CaptureFixture[str]
    ) -> None:
        hooks.endpoint(script=always(404))
        settings = hooks.settings()
        dead_queue = settings.names.events_dead_queue
        publish_events(settings, [make_event(n) for n in range(2)])
        with WebhooksThread(settings):
            assert wait_until(lambda: queue_depth(settings, dead_queue) == 2, timeout=20)

        capsys.readouterr()
        assert 0 == dlq(settings, "purge", "--queue", "events", "--dry-run")
        assert "would purge 2" in capsys.readouterr().out
        assert 0 == dlq(settings, "purge", "--queue", "events", "--yes", "--limit", "1")
        assert "purged 1" in capsys.readouterr().out
        assert wait_until(lambda: queue_depth(settings, dead_queue) == 1, timeout=5)

    def test_an_event_that_outlives_the_max_age_is_exhausted(
        self, hooks: WebhookNamespace, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """503 forever, a max age of 2.5 s with a 1 s tier: a few tries, then dead."""
        failing = hooks.endpoint(script=always(503, b"down"))
        settings = hooks.settings(webhook_max_age=2.5)
        [event_id] = publish_events(settings, [make_event(1)])
        with WebhooksThread(settings):
            dead_queue = settings.names.events_dead_queue
            assert wait_until(lambda: queue_depth(settings, dead_queue) == 1, timeout=20)
        assert 2 <= len(failing.received) <= 3
        capsys.readouterr()
        assert 0 == dlq(settings, "list", "--queue", "events", "--reason", "exhausted", "--json")
        [row] = json.loads(capsys.readouterr().out)
        assert (event_id, len(failing.received)) == (row["id"], row["attempts"])
