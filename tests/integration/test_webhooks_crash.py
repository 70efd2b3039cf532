"""``mailfleet webhooks`` as a real process: SIGKILLed mid-stream it loses no event, and its
output never shows a secret."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator

import pytest

from mailfleet.shared.settings import Settings
from tests.integration.helpers import mailfleet_command, wait_until
from tests.integration.webhook_endpoints import (
    WebhookNamespace,
    WebhooksProcess,
    make_event,
    new_secret,
    publish_events,
    queue_depth,
    webhooks_env,
)

EVENTS = 300


@pytest.fixture
def hooks(amqp_url: str, redis_server_url: str, namespace: str) -> Iterator[WebhookNamespace]:
    space = WebhookNamespace(
        Settings(
            amqp_url=amqp_url,
            redis_url=redis_server_url,
            namespace=namespace,
            webhook_retry_delays=[1.0, 2.0],
            shutdown_grace=5.0,
            metrics_port=0,
        )
    )
    yield space
    space.close()


@pytest.fixture
def processes() -> Iterator[list[WebhooksProcess]]:
    started: list[WebhooksProcess] = []
    yield started
    for process in started:
        process.stop()


class TestKill:
    def test_sigkill_mid_stream_then_restart_loses_no_event(
        self, hooks: WebhookNamespace, processes: list[WebhooksProcess]
    ) -> None:
        """The ledger: every event published reaches the endpoint; a duplicate is only an
        event in flight at the kill, and carries the same webhook-id both times."""
        endpoint = hooks.endpoint(secrets=2, delay=0.02)
        settings = hooks.settings()
        expected = set(publish_events(settings, [make_event(n) for n in range(EVENTS)]))

        processes.append(first := WebhooksProcess(settings, hooks.configs()))
        assert wait_until(lambda: len(endpoint.received) >= EVENTS // 4, timeout=60), first.log()
        first.kill()
        at_kill = len(endpoint.delivered())
        assert at_kill < EVENTS, "it finished before it could be killed"

        processes.append(second := WebhooksProcess(settings, hooks.configs()))
        assert wait_until(lambda: set(endpoint.delivered()) == expected, timeout=60), (
            len(endpoint.delivered()),
            second.log()[-2000:],
        )
        time.sleep(1.0)
        assert 0 == second.terminate(timeout=30), second.log()[-2000:]

        delivered = endpoint.delivered()
        duplicates = {event: count for event, count in delivered.items() if count > 1}
        ledger = {
            "expected": len(expected),
            "received": len(set(delivered) & expected),
            "lost": len(expected - set(delivered)),
            "duplicates": len(duplicates),
            "requests": len(endpoint.received),
            "delivered_at_kill": at_kill,
            "dead": queue_depth(settings, settings.names.events_dead_queue),
        }
        print("ledger", json.dumps(ledger))
        assert (0, 0, EVENTS) == (ledger["lost"], ledger["dead"], ledger["received"])
        # In flight at the kill: at most the endpoint's budget of requests.
        assert len(duplicates) <= settings.webhook_concurrency, duplicates
        endpoint.verify_all()  # webhook-id == event id on every request, copies included
        assert 0 == queue_depth(
            settings, f"{settings.namespace}.webhooks.{settings.webhooks[0].name}"
        )


class TestSecrets:
    def test_no_secret_in_the_output_or_the_dead_letters(
        self, hooks: WebhookNamespace, processes: list[WebhooksProcess]
    ) -> None:
        """DEBUG logs of deliveries, retries and dead letters, a URL with a password: none of
        the secrets or the password appears in the process's output."""
        statuses = iter([500, 400, 200, 200, 200])
        endpoint = hooks.endpoint(
            secrets=2,
            name="guarded",  # the same queue whether or not the URL holds the password
            script=lambda number, event, body: (next(statuses, 200), b"answer"),
        )
        config = endpoint.config()
        config["url"] = config["url"].replace("127.0.0.1", "hook-user:url-pw-Kq7@127.0.0.1")
        settings = hooks.settings()
        publish_events(settings, [make_event(n) for n in range(4)])

        processes.append(
            running := WebhooksProcess(settings, [config], MAILFLEET_LOG_LEVEL="DEBUG")
        )
        dead = settings.names.events_dead_queue
        assert wait_until(lambda: len(endpoint.delivered()) == 3, timeout=30), running.log()
        assert wait_until(lambda: queue_depth(settings, dead) == 1, timeout=10)
        assert 0 == running.terminate()
        output = running.log()
        assert "webhook_retry" in output
        assert "webhook_dead" in output
        assert "webhook_delivered" in output
        assert endpoint.received[0].headers["authorization"].startswith("Basic ")

        letters = subprocess.run(
            [*mailfleet_command("dlq", "export", "--queue", "events")],
            env=webhooks_env(settings, []),
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert "url-pw-Kq7" not in letters
        for secret in endpoint.secrets:
            for text in (output, letters):
                assert secret not in text
                assert secret.removeprefix("whsec_") not in text
        assert "url-pw-Kq7" not in output

    def test_a_bad_secret_is_one_line_without_it(self, hooks: WebhookNamespace) -> None:
        good, bad = new_secret(), "whsec_dG9vIHNob3J0"  # "too short"
        settings = hooks.base
        env = webhooks_env(settings, [{"url": "https://h.example.com", "secret": [good, bad]}])
        result = subprocess.run(
            mailfleet_command("webhooks"),
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert 2 == result.returncode
        [line] = result.stderr.splitlines()
        assert line.startswith("mailfleet: configuration error: MAILFLEET_WEBHOOKS: endpoint 1:")
        for secret in (good, bad, good.removeprefix("whsec_"), "dG9vIHNob3J0"):
            assert secret not in result.stderr + result.stdout
