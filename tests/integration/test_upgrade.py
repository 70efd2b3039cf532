"""The upgrade path for queue arguments (RabbitMQ 4): `mailfleet declare --check` names the
queues that differ, `mailfleet migrate` re-declares them with every message kept, on a real
broker and a real queue holding messages."""

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
from mailfleet.shared.names import PERSISTENT, REASON
from mailfleet.shared.settings import Settings
from mailfleet.shared.topology import QueueSpec
from tests.integration.helpers import drain_dead_letters, mailfleet_command, settings_env

_OLD_DEAD_ARGUMENTS = {"x-queue-type": "quorum"}  # {ns}.dead as versions before 4.x readiness
_LETTERS = 300


def _dead_spec(settings: Settings) -> QueueSpec:
    [dead] = [q for q in topology_of(settings).queues if q.name == settings.names.dead_queue]
    return dead


def _declare_old_dead_queue(connection: Connection, settings: Settings) -> None:
    """{ns}.dead as an older version left it: no delivery limit."""
    channel = connection.channel()
    try:
        channel.queue_delete(settings.names.dead_queue)
        channel.queue_declare(
            settings.names.dead_queue,
            durable=True,
            auto_delete=False,
            arguments=_OLD_DEAD_ARGUMENTS,
        )
        channel.queue_bind(settings.names.dead_queue, settings.names.dead_letter_exchange, "")
    finally:
        channel.close()


def _dead_letter(channel: amqp.Channel, settings: Settings, number: int) -> None:
    # Each id twice: a dead-letter queue may hold one job more than once.
    message = amqp.Message(
        f"letter {number}".encode(),
        message_id=f"job-{number // 2}",
        delivery_mode=PERSISTENT,
        application_headers={REASON: "permanent", "x-test-number": number},
    )
    channel.basic_publish_confirm(message, exchange=settings.names.dead_letter_exchange)


def _fill(connection: Connection, settings: Settings, count: int) -> None:
    channel = connection.channel()
    try:
        for number in range(count):
            _dead_letter(channel, settings, number)
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


def _letters(connection: Connection, settings: Settings) -> Counter[tuple[str, bytes, str, int]]:
    return Counter(
        (letter.job_id, letter.body, letter.reason, int(letter.headers["x-test-number"]))
        for letter in drain_dead_letters(connection, settings)
    )


class TestDeclareCheck:
    def test_a_queue_declared_by_an_older_version_is_reported(
        self, settings: Settings, amqp_connection: Connection
    ) -> None:
        """--check exits 1 naming {ns}.dead and the argument that differs; declares nothing."""
        _declare_old_dead_queue(amqp_connection, settings)

        result = _cli(settings, "declare", "--check")

        assert 1 == result.returncode, result.stderr
        dead = settings.names.dead_queue
        assert f"{dead}: differs (inequivalent arg 'x-delivery-limit'" in result.stdout
        assert "1 of " in result.stdout
        assert QueueState.DIFFERS is check_queue(amqp_connection, _dead_spec(settings)).state

    def test_a_current_namespace_matches(self, settings: Settings) -> None:
        """A namespace declared by this version: exit 0, every queue matches."""
        result = _cli(settings, "declare", "--check")

        assert (0, "") == (result.returncode, result.stderr)
        assert result.stdout.startswith("all ")


class TestMigrate:
    def test_a_mis_declared_queue_is_re_declared_with_every_message_kept(
        self, settings: Settings, amqp_connection: Connection
    ) -> None:
        """300 dead letters in an old {ns}.dead: after `migrate`, the queue matches and
        holds the same 300 messages (ids, bodies, headers), none lost, none doubled."""
        _declare_old_dead_queue(amqp_connection, settings)
        _fill(amqp_connection, settings, _LETTERS)

        result = _cli(settings, "migrate")

        assert 0 == result.returncode, result.stderr
        assert (
            f"{settings.names.dead_queue}: re-declared, {_LETTERS} messages kept" in result.stdout
        )
        assert 0 == _cli(settings, "declare", "--check").returncode
        assert not queue_exists(amqp_connection, settings.names.dead_queue + MIGRATING)
        letters = _letters(amqp_connection, settings)
        expected = Counter(
            (f"job-{number // 2}", f"letter {number}".encode(), "permanent", number)
            for number in range(_LETTERS)
        )
        assert expected == letters

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
        _declare_old_dead_queue(amqp_connection, settings)
        _fill(amqp_connection, settings, 5)
        consumer = amqp_connection.channel()
        consumer.basic_qos(0, 1, False)
        consumer.basic_consume(settings.names.dead_queue, callback=lambda message: None)
        try:
            with pytest.raises(BrokerError, match="has 1 consumer"):
                migrate_queue(amqp_connection, _dead_spec(settings), confirm_timeout=30)
        finally:
            consumer.close()

        assert QueueState.DIFFERS is check_queue(amqp_connection, _dead_spec(settings)).state
        assert not queue_exists(amqp_connection, settings.names.dead_queue + MIGRATING)
        assert 5 == sum(_letters(amqp_connection, settings).values())
