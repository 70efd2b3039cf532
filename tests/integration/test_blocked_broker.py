"""A broker that pushes back: with a memory alarm on a RabbitMQ node of the test's own, the
producer, `mailfleet publish` and the worker's republisher wait at most
MAILFLEET_PUBLISH_TIMEOUT and say the broker is blocking and why; the worker takes no new
deliveries while blocked, acks no retry it could not publish, and resumes afterwards."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from mailfleet.producer.connection import open_connection
from mailfleet.producer.devtools.sink import SmtpSink
from mailfleet.producer.publisher import Producer
from mailfleet.producer.topology import queue_depths, topology_of
from mailfleet.shared.errors import BrokerBlocked
from mailfleet.shared.relays import Relay
from mailfleet.shared.settings import Settings
from tests.django_setup import OUTBOX_SQLITE, configure_django
from tests.integration.helpers import (
    DeliveryLedger,
    WorkerThread,
    drain_dead_letters,
    mailfleet_command,
    make_job,
    settings_env,
    wait_until,
)
from tests.integration.own_rabbitmq import OwnRabbitMQ, own_rabbitmq
from tests.integration.relays import ScriptedReplies
from tests.namespaces import TEST_RETRY_DELAYS

# This suite's ports for a broker of its own: clear of the system node (5672, 25672).
_AMQP_PORT, _DIST_PORT = 5702, 25702
_TIMEOUT = 1.5  # MAILFLEET_PUBLISH_TIMEOUT in these tests


@pytest.fixture(scope="module")
def broker() -> Iterator[OwnRabbitMQ]:
    with own_rabbitmq(_AMQP_PORT, _DIST_PORT, "mailfleet-edges-alarm") as node:
        yield node


@pytest.fixture
def alarm(broker: OwnRabbitMQ) -> Iterator[OwnRabbitMQ]:
    """The node, its memory alarm cleared again after the test whatever happened."""
    yield broker
    broker.memory_alarm(on=False)


@pytest.fixture
def blocked_settings(
    broker: OwnRabbitMQ, redis_server_url: str, namespace: str, smtp_server: SmtpSink
) -> Settings:
    return Settings(
        amqp_url=SecretStr(broker.url),
        redis_url=SecretStr(redis_server_url),
        namespace=namespace,
        smtp_relays=[Relay.parse(smtp_server.url)],
        retry_delays=TEST_RETRY_DELAYS,
        publish_timeout=_TIMEOUT,
        concurrency=1,
        prefetch=10,
        events=False,
        shutdown_grace=10.0,
        metrics_port=0,
    )


def _lane_depth(settings: Settings) -> int:
    connection = open_connection(settings)
    try:
        return queue_depths(connection, topology_of(settings))[
            f"{settings.namespace}.transactional"
        ][0]
    finally:
        connection.release()


class TestProducer:
    def test_a_blocked_publish_fails_after_the_timeout_saying_why(
        self, alarm: OwnRabbitMQ, blocked_settings: Settings
    ) -> None:
        """Memory alarm: publish raises BrokerBlocked naming "low on memory"; once the
        alarm clears, the same producer publishes again."""
        with Producer(blocked_settings) as producer:
            alarm.memory_alarm(on=True)
            with pytest.raises(BrokerBlocked, match=r"blocking publishes \(low on memory\)"):
                producer.publish(make_job(1))
            alarm.memory_alarm(on=False)
            producer.publish(make_job(2))

        assert wait_until(lambda: _lane_depth(blocked_settings) >= 1, timeout=10)

    def test_mailfleet_publish_exits_1_saying_the_broker_blocks(
        self, alarm: OwnRabbitMQ, blocked_settings: Settings, tmp_path: Path
    ) -> None:
        """`mailfleet publish` under an alarm: exit 1, the reason on stderr, no hang."""
        with Producer(blocked_settings):  # declares the namespace before the alarm
            pass
        jobs = tmp_path / "jobs.jsonl"
        jobs.write_text(json.dumps(make_job(1).model_dump(mode="json", by_alias=True)) + "\n")
        alarm.memory_alarm(on=True)

        result = subprocess.run(
            mailfleet_command("publish", str(jobs)),
            env=settings_env(blocked_settings),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

        assert 1 == result.returncode
        assert "RabbitMQ is blocking publishes (low on memory)" in result.stderr


class TestDjangoRelay:
    def test_the_outbox_relay_under_an_alarm_keeps_its_rows_and_says_why(
        self, alarm: OwnRabbitMQ, blocked_settings: Settings
    ) -> None:
        """The relay's publish is blocked: BrokerBlocked after the timeout, the row stays;
        after the alarm the relay moves it."""
        configure_django()
        from django.core.management import call_command

        from mailfleet.producer.django.models import OutboxMessage
        from mailfleet.producer.django.outbox import OutboxRelay, write_outbox

        call_command("migrate", "mailfleet", database=OUTBOX_SQLITE, verbosity=0)
        rows = OutboxMessage.objects.using(OUTBOX_SQLITE).filter(
            namespace=blocked_settings.namespace
        )
        write_outbox([make_job(1)], blocked_settings.namespace, OUTBOX_SQLITE)
        relay = OutboxRelay(blocked_settings, using=OUTBOX_SQLITE)
        try:
            relay.relay_once()  # connected and declared before the alarm
            alarm.memory_alarm(on=True)
            write_outbox([make_job(2)], blocked_settings.namespace, OUTBOX_SQLITE)
            with pytest.raises(BrokerBlocked, match="low on memory"):
                relay.relay_once()
            assert ["job-2"] == [row.id for row in rows]
            alarm.memory_alarm(on=False)
            assert 1 == relay.drain()
        finally:
            relay.close()
            rows.delete()
        # The broker had read job-2's blocked publish: it lands when the alarm clears, beside
        # the relay's second copy (same id; the worker's sent ledger sends one email).
        assert _lane_depth(blocked_settings) in {2, 3}


class TestWorker:
    @pytest.mark.parametrize("events", [False, True], ids=["events-off", "events-on"])
    def test_a_blocked_republisher_holds_the_senders_and_loses_nothing(
        self,
        events: bool,
        alarm: OwnRabbitMQ,
        blocked_settings: Settings,
        smtp_server: SmtpSink,
        replies: ScriptedReplies,
    ) -> None:
        """job-1 gets a 451 while the alarm is on: its retry cannot be published, so it is
        not acked, and no other job is sent while blocked. After the alarm: every job is
        delivered exactly once, job-1 on its second try, nothing dead. With the event stream
        on, its publisher is blocked too, and the acks wait for its confirms."""
        blocked_settings = blocked_settings.model_copy(update={"events": events})
        replies.script("rcpt1@example.org", "451 4.3.0 try later", None)
        ledger = DeliveryLedger()
        with Producer(blocked_settings) as producer:
            ledger.confirmed = set(producer.publish_many([make_job(n) for n in range(1, 6)]))
        alarm.memory_alarm(on=True)

        worker = WorkerThread(blocked_settings)
        registry = worker.worker.metrics.registry
        assert wait_until(
            lambda: registry.get_sample_value("mailfleet_broker_blocked") == 1.0, timeout=30
        )
        assert 0 == smtp_server.count  # job-1 came first; the rest went back unsent
        alarm.memory_alarm(on=False)
        assert smtp_server.wait_for(5, timeout=60)
        assert wait_until(lambda: _lane_depth(blocked_settings) == 0, timeout=30)
        assert 0 == worker.stop()

        ledger.record_relay(smtp_server)
        connection = open_connection(blocked_settings)
        try:
            ledger.record_dead(drain_dead_letters(connection, blocked_settings))
        finally:
            connection.release()
        assert (set(), {}, {}) == (ledger.lost, ledger.duplicates, ledger.dead)
        assert 2 == replies.seen["rcpt1@example.org"]
        assert 0.0 == registry.get_sample_value("mailfleet_broker_blocked")
