"""The upgrade path for queue arguments: `mailfleet declare --check` names the queues that
differ from what this version declares, `mailfleet migrate` re-declares them with every
message kept, on a real broker and a real queue holding messages."""

from __future__ import annotations

import subprocess
from collections import Counter

import amqp
import pytest
from kombu.connection import Connection

from mailfleet.producer.ops.migrate import MIGRATING, migrate_queue
from mailfleet.producer.ops.queue_check import QueueState, check_queue, queue_exists
from mailfleet.producer.topology import topology_of
from mailfleet.shared.errors import BrokerError
from mailfleet.shared.job import Lane
from mailfleet.shared.names import ATTEMPT, PERSISTENT
from mailfleet.shared.settings import Settings
from mailfleet.shared.topology import QueueSpec
from tests.integration.helpers import (
    drain_dead_letters,
    mailfleet_command,
    settings_env,
    wait_until,
)

_OLD_LIMIT = 5  # MAILFLEET_DELIVERY_LIMIT as an older deployment had it (now 20)
_MESSAGES = 300


def _lane_spec(settings: Settings) -> QueueSpec:
    name = settings.names.lane_queue(Lane.TRANSACTIONAL)
    [lane] = [queue for queue in topology_of(settings).queues if queue.name == name]
    return lane


def _dead_spec(settings: Settings) -> QueueSpec:
    [dead] = [q for q in topology_of(settings).queues if q.name == settings.names.dead_queue]
    return dead


def _declare_old_lane_queue(connection: Connection, settings: Settings) -> None:
    """{ns}.transactional as an older deployment left it: another delivery limit."""
    lane = _lane_spec(settings)
    arguments = {**lane.arguments, "x-delivery-limit": _OLD_LIMIT}
    channel = connection.channel()
    try:
        channel.queue_delete(lane.name)
        channel.queue_declare(lane.name, durable=True, auto_delete=False, arguments=arguments)
        channel.queue_bind(lane.name, settings.names.exchange, Lane.TRANSACTIONAL.value)
    finally:
        channel.close()


def _fill(connection: Connection, settings: Settings, count: int) -> None:
    """``count`` messages in the lane; each id twice (a queue may hold a job more than once)."""
    channel = connection.channel()
    try:
        for number in range(count):
            message = amqp.Message(
                f"message {number}".encode(),
                message_id=f"job-{number // 2}",
                delivery_mode=PERSISTENT,
                application_headers={ATTEMPT: 1, "x-test-number": number},
            )
            channel.basic_publish_confirm(
                message, exchange=settings.names.exchange, routing_key=Lane.TRANSACTIONAL.value
            )
    finally:
        channel.close()


def _cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        mailfleet_command(*args),
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _drain(connection: Connection, queue: str) -> Counter[tuple[str, bytes, int, int]]:
    """Take every message of ``queue``: (id, body, attempt header, test number)."""
    channel = connection.channel()
    found: Counter[tuple[str, bytes, int, int]] = Counter()
    try:
        while (message := channel.basic_get(queue, no_ack=True)) is not None:
            message_headers = message.properties.get("application_headers") or {}
            found[
                (
                    str(message.properties.get("message_id")),
                    bytes(message.body),
                    int(message_headers[ATTEMPT]),
                    int(message_headers["x-test-number"]),
                )
            ] += 1
    finally:
        channel.close()
    return found


class TestDeclareCheck:
    def test_a_queue_declared_by_an_older_version_is_reported(
        self, settings: Settings, amqp_connection: Connection
    ) -> None:
        """--check exits 1 naming the lane queue and the argument that differs; declares
        nothing."""
        _declare_old_lane_queue(amqp_connection, settings)

        result = _cli(settings, "declare", "--check")

        assert 1 == result.returncode, result.stderr
        lane = _lane_spec(settings).name
        assert f"{lane}: differs (inequivalent arg 'x-delivery-limit'" in result.stdout
        assert "1 of " in result.stdout
        assert QueueState.DIFFERS is check_queue(amqp_connection, _lane_spec(settings)).state

    def test_a_current_namespace_matches(self, settings: Settings) -> None:
        """A namespace declared by this version: exit 0, every queue matches."""
        result = _cli(settings, "declare", "--check")

        assert (0, "") == (result.returncode, result.stderr)
        assert result.stdout.startswith("all ")


class TestMigrate:
    def test_a_mis_declared_queue_is_re_declared_with_every_message_kept(
        self, settings: Settings, amqp_connection: Connection
    ) -> None:
        """300 jobs in a lane queue of an older limit: after `migrate` the queue matches
        and holds the same 300 messages (ids, bodies, headers), none lost, none doubled."""
        _declare_old_lane_queue(amqp_connection, settings)
        _fill(amqp_connection, settings, _MESSAGES)
        lane = _lane_spec(settings).name

        result = _cli(settings, "migrate")

        assert 0 == result.returncode, result.stderr
        assert f"{lane}: re-declared, {_MESSAGES} messages kept" in result.stdout
        assert 0 == _cli(settings, "declare", "--check").returncode
        assert not queue_exists(amqp_connection, lane + MIGRATING)
        expected = Counter(
            (f"job-{number // 2}", f"message {number}".encode(), 1, number)
            for number in range(_MESSAGES)
        )
        assert expected == _drain(amqp_connection, lane)

    def test_a_stopped_migration_is_finished_by_running_it_again(
        self, settings: Settings, amqp_connection: Connection
    ) -> None:
        """Stopped after the queue was re-declared, its messages still in {q}.migrating:
        `migrate` moves them back and removes the holding queue."""
        dead = _dead_spec(settings)
        holding = QueueSpec(dead.name + MIGRATING, dead.arguments, ())
        channel = amqp_connection.channel()
        try:
            channel.queue_declare(
                holding.name, durable=True, auto_delete=False, arguments=holding.arguments
            )
            for number in range(20):
                channel.basic_publish_confirm(
                    amqp.Message(b"x", message_id=f"job-{number}", delivery_mode=PERSISTENT),
                    exchange="",
                    routing_key=holding.name,
                )
        finally:
            channel.close()

        migration = migrate_queue(amqp_connection, dead, confirm_timeout=30)

        assert (0, 20) == (migration.moved_out, migration.moved_back)
        assert not queue_exists(amqp_connection, holding.name)
        assert 20 == len(drain_dead_letters(amqp_connection, settings))

    def test_a_queue_with_consumers_is_left_alone(
        self, settings: Settings, amqp_connection: Connection
    ) -> None:
        """A consumer on the old queue: migrate refuses, and the queue keeps its messages."""
        _declare_old_lane_queue(amqp_connection, settings)
        _fill(amqp_connection, settings, 5)
        lane = _lane_spec(settings)
        consumer = amqp_connection.channel()
        consumer.basic_qos(0, 1, False)
        consumer.basic_consume(lane.name, callback=lambda message: None)
        try:
            with pytest.raises(BrokerError, match="has 1 consumer"):
                migrate_queue(amqp_connection, lane, confirm_timeout=30)
        finally:
            consumer.close()

        assert QueueState.DIFFERS is check_queue(amqp_connection, lane).state
        assert not queue_exists(amqp_connection, lane.name + MIGRATING)
        assert wait_until(lambda: 5 == _ready(amqp_connection, lane.name), timeout=10)
        assert 5 == sum(_drain(amqp_connection, lane.name).values())


def _ready(connection: Connection, queue: str) -> int:
    channel = connection.channel()
    try:
        _, ready, _ = channel.queue_declare(queue, passive=True)
    finally:
        channel.close()
    return int(ready)
