"""`mailfleet stats` reports the depth and consumers of every queue of a namespace, and the
send rate from the workers' Redis counter."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import amqp
import pytest
import redis
from kombu.connection import Connection

from mailfleet.producer.publisher import Producer
from mailfleet.shared.settings import Settings
from tests.integration.helpers import mailfleet_command, make_job, settings_env


def _stats(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        mailfleet_command("stats", *args),
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def delay_consumer(amqp_connection: Connection, settings: Settings) -> Iterator[str]:
    """One consumer on the first delay queue (which stays empty), as a worker would hold."""
    queue = settings.names.delay_queue(settings.retry_delays[0])
    channel = amqp_connection.channel()
    channel.basic_consume(queue, callback=lambda message: None)
    yield queue
    channel.close()


class TestStats:
    def test_json_reports_each_queue_depth_and_consumers(
        self,
        settings: Settings,
        producer: Producer,
        amqp_connection: Connection,
        delay_consumer: str,
    ) -> None:
        """Jobs published to each lane and a dead letter show up as depths; a consumer counts."""
        producer.publish_many([make_job(n) for n in range(3)])
        producer.publish_many([make_job(n, lane="bulk") for n in range(3, 5)])
        channel = amqp_connection.channel()
        channel.basic_publish(amqp.Message(b"{}"), exchange=settings.names.dead_letter_exchange)
        channel.close()

        result = _stats(settings, "--json", "--interval", "0.1")

        assert 0 == result.returncode, result.stderr
        stats = json.loads(result.stdout)
        ns = settings.namespace
        assert ns == stats["namespace"]
        assert {"queue": f"{ns}.transactional", "messages": 3, "consumers": 0} == stats["lanes"][
            "transactional"
        ]
        assert {"queue": f"{ns}.bulk", "messages": 2, "consumers": 0} == stats["lanes"]["bulk"]
        assert {"queue": f"{ns}.dead", "messages": 1, "consumers": 0} == stats["dead"]
        assert {"300ms": (0, 1), "600ms": (0, 0)} == {
            tier: (queue["messages"], queue["consumers"]) for tier, queue in stats["delay"].items()
        }
        assert delay_consumer == stats["delay"]["300ms"]["queue"]
        assert (0, 0.0) == (stats["delivered_total"], stats["send_rate_per_s"])

    def test_watch_measures_the_rate_from_the_delivered_counter(
        self, settings: Settings, redis_client: redis.Redis
    ) -> None:
        """Each refresh's rate is the counter's growth since the last one over the interval."""
        key = settings.names.delivered_counter
        command = mailfleet_command("stats", "--json", "--watch", "1", "--count", "3")
        with subprocess.Popen(
            command, env=settings_env(settings), stdout=subprocess.PIPE, text=True
        ) as process:
            assert process.stdout is not None
            first: dict[str, Any] = json.loads(process.stdout.readline())
            # The second refresh measures from the counter value read just before `first`.
            redis_client.incrby(key, 120)
            second: dict[str, Any] = json.loads(process.stdout.readline())
            third: dict[str, Any] = json.loads(process.stdout.readline())
            assert 0 == process.wait(timeout=30)

        assert (0, 0.0) == (first["delivered_total"], first["send_rate_per_s"])
        assert 120 == second["delivered_total"]
        assert pytest.approx(120 / second["interval_s"], rel=0.01) == second["send_rate_per_s"]
        assert (120, 0.0) == (third["delivered_total"], third["send_rate_per_s"])

    def test_the_table_names_every_queue_and_the_rate(self, settings: Settings) -> None:
        """Without --json it prints a table of the queues and a send-rate line."""
        result = _stats(settings, "--interval", "0.1")

        assert 0 == result.returncode, result.stderr
        ns = settings.namespace
        for queue in (f"{ns}.transactional", f"{ns}.bulk", f"{ns}.delay.300ms", f"{ns}.dead"):
            assert queue in result.stdout
        assert "send rate: 0.0/s" in result.stdout

    def test_an_undeclared_namespace_is_a_clear_error(self, settings: Settings) -> None:
        """For a namespace that was never declared it exits 1 and says to run declare."""
        missing = settings.model_copy(update={"namespace": f"{settings.namespace}-missing"})

        result = _stats(missing, "--json")

        assert 1 == result.returncode
        assert "mailfleet declare" in result.stderr
