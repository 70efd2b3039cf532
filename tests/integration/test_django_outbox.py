"""The Django outbox on real PostgreSQL (and SQLite for development): mail is a row in the
caller's transaction, a relay moves it to RabbitMQ after the confirms, exactly once at the
relay, even with RabbitMQ down at commit, two relays at once, or a relay that dies after
the confirm; and mailfleet's logs go through the standard ``logging`` module."""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta

import psycopg
import pytest
import structlog
from django.core.mail import EmailMessage, get_connection
from django.core.management import call_command
from django.db import connections, transaction
from django.test import override_settings
from django.utils import timezone
from kombu.connection import Connection
from pydantic import SecretStr

from mailfleet.producer.devtools.sink import SmtpSink
from mailfleet.producer.topology import queue_depths, topology_of
from mailfleet.shared.errors import BrokerUnavailable
from mailfleet.shared.settings import Settings
from tests.django_setup import (
    OUTBOX_POSTGRES,
    OUTBOX_SQLITE,
    POSTGRES_DATABASE,
    POSTGRES_HOST,
    configure_django,
)
from tests.integration.helpers import WorkerThread, wait_until
from tests.integration.outages import TcpProxy

configure_django()  # the outbox's model needs Django's apps loaded before it is imported

from mailfleet.producer.django.models import OutboxMessage  # noqa: E402
from mailfleet.producer.django.outbox import OutboxRelay  # noqa: E402
from mailfleet.producer.django.outbox_metrics import OutboxCollector  # noqa: E402
from mailfleet.producer.django.relay_thread import start_relay_thread  # noqa: E402

BACKEND = "mailfleet.producer.django.EmailBackend"


class _Rollback(Exception):
    """Raised to leave an atomic block by rolling it back."""


def _in_rolled_back_transaction(database: str, work: Callable[[], object]) -> None:
    """Run ``work`` in a transaction of ``database`` that is then rolled back."""
    with transaction.atomic(using=database):
        work()
        raise _Rollback


def _admin(sql: str) -> None:
    with psycopg.connect(host=POSTGRES_HOST, user="postgres", dbname="test", autocommit=True) as db:
        db.execute(sql.encode())


@pytest.fixture(scope="module")
def postgres_database() -> Iterator[str]:
    """A PostgreSQL database of this run's own, dropped afterwards."""
    configure_django()
    _admin(f"DROP DATABASE IF EXISTS {POSTGRES_DATABASE}")
    _admin(f"CREATE DATABASE {POSTGRES_DATABASE}")
    yield POSTGRES_DATABASE
    connections[OUTBOX_POSTGRES].close()
    _admin(f"DROP DATABASE IF EXISTS {POSTGRES_DATABASE} WITH (FORCE)")


@pytest.fixture(params=[OUTBOX_POSTGRES, OUTBOX_SQLITE])
def database(request: pytest.FixtureRequest, postgres_database: str) -> str:
    """Each test on PostgreSQL and on SQLite: the outbox table migrated there."""
    alias = str(request.param)
    call_command("migrate", "mailfleet", database=alias, verbosity=0)
    return alias


@pytest.fixture
def postgres(postgres_database: str) -> str:
    call_command("migrate", "mailfleet", database=OUTBOX_POSTGRES, verbosity=0)
    return OUTBOX_POSTGRES


@pytest.fixture
def outbox(settings: Settings, database: str) -> Iterator[None]:
    """The Django settings of a project with the outbox on, in the test's namespace."""
    with override_settings(
        MAILFLEET_NAMESPACE=settings.namespace,
        MAILFLEET_SETTINGS={
            "amqp_url": settings.amqp_url.get_secret_value(),
            "redis_url": settings.redis_url.get_secret_value(),
        },
        MAILFLEET_DJANGO_OUTBOX=True,
        MAILFLEET_DATABASE=database,
    ):
        yield
    OutboxMessage.objects.using(database).filter(namespace=settings.namespace).delete()


def _mail(number: int, **backend: object) -> EmailMessage:
    return EmailMessage(
        subject=f"Order {number}",
        body="It shipped.",
        from_email="Shop <shop@example.com>",
        to=[f"buyer{number}@example.org"],
        connection=get_connection(BACKEND, **backend),
    )


def _rows(database: str, settings: Settings) -> int:
    return int(OutboxMessage.objects.using(database).filter(namespace=settings.namespace).count())


def _lane_depth(connection: Connection, settings: Settings) -> int:
    return queue_depths(connection, topology_of(settings))[f"{settings.namespace}.transactional"][0]


def _deliver(settings: Settings) -> None:
    assert 0 == WorkerThread(settings, burst=True).join(60)


class TestOutboxWrites:
    def test_send_writes_a_row_in_the_transaction_and_no_broker_io(
        self, outbox: None, database: str, settings: Settings, amqp_connection: Connection
    ) -> None:
        """Inside atomic: a row per message; nothing reaches RabbitMQ until a relay runs."""
        with transaction.atomic(using=database):
            assert 2 == _mail(1).send() + _mail(2).send()
            assert 2 == _rows(database, settings)

        assert 0 == _lane_depth(amqp_connection, settings)
        assert 2 == _rows(database, settings)

    def test_a_rollback_sends_nothing(
        self,
        outbox: None,
        database: str,
        settings: Settings,
        amqp_connection: Connection,
        smtp_server: SmtpSink,
    ) -> None:
        """A rolled-back transaction leaves no row, and the relay and the worker send nothing."""
        with pytest.raises(_Rollback):
            _in_rolled_back_transaction(database, _mail(1).send)

        assert 0 == _rows(database, settings)
        assert 0 == OutboxRelay(settings, using=database).drain()
        _deliver(settings)
        assert 0 == smtp_server.count


class TestRelay:
    def test_a_commit_while_rabbitmq_is_down_is_delivered_once_it_is_back(
        self, outbox: None, database: str, settings: Settings, smtp_server: SmtpSink
    ) -> None:
        """Broker unreachable at commit and at the relay's first try: the row stays; once
        RabbitMQ is back the relay moves it and the relay gets the email exactly once."""
        url = settings.amqp_url.get_secret_value()
        host_port = url.split("@", 1)[1].split("/", 1)[0]
        host, port = host_port.rsplit(":", 1)
        proxy = TcpProxy(host, int(port))
        try:
            through_proxy = settings.model_copy(
                update={"amqp_url": SecretStr(url.replace(host_port, f"127.0.0.1:{proxy.port}"))}
            )
            proxy.cut()
            with transaction.atomic(using=database):
                _mail(1).send()
            relay = OutboxRelay(through_proxy, using=database)
            with pytest.raises(BrokerUnavailable):
                relay.relay_once()
            assert 1 == _rows(database, settings)

            proxy.restore()
            assert 1 == relay.drain()
            relay.close()
        finally:
            proxy.close()

        assert 0 == _rows(database, settings)
        _deliver(settings)
        assert [("buyer1@example.org",)] == [m.rcpt_tos for m in smtp_server.messages]

    def test_a_relay_that_dies_after_the_confirm_republishes_and_the_ledger_stops_a_second_email(
        self,
        outbox: None,
        database: str,
        settings: Settings,
        smtp_server: SmtpSink,
        amqp_connection: Connection,
    ) -> None:
        """Published, confirmed, then the delete rolled back (the relay died): the next relay
        publishes the same job id again; the worker sends one email."""
        _mail(1).send()
        relay = OutboxRelay(settings, using=database)
        # relay_once's transaction is a savepoint inside: undone with the outer block.
        with pytest.raises(_Rollback):
            _in_rolled_back_transaction(database, relay.relay_once)
        assert 1 == _rows(database, settings)
        assert 1 == relay.drain()
        relay.close()
        assert wait_until(lambda: _lane_depth(amqp_connection, settings) == 2, timeout=10)

        _deliver(settings)

        [message] = smtp_server.messages
        assert [("buyer1@example.org",)] == [message.rcpt_tos]

    def test_the_management_command_relays_until_empty(
        self, outbox: None, database: str, settings: Settings, amqp_connection: Connection
    ) -> None:
        """`manage.py mailfleet_relay --once` moves every row and says how many."""
        for number in range(3):
            _mail(number).send()
        output = _Output()

        call_command("mailfleet_relay", "--once", "--database", database, stdout=output)

        assert "relayed 3" in output.text
        assert 0 == _rows(database, settings)
        assert wait_until(lambda: _lane_depth(amqp_connection, settings) == 3, timeout=10)

    def test_the_relay_thread_moves_rows_as_they_commit(
        self, outbox: None, database: str, settings: Settings, amqp_connection: Connection
    ) -> None:
        """MAILFLEET_OUTBOX_RELAY_THREAD's thread: a committed row reaches the lane."""
        relay = start_relay_thread(interval=0.1)
        try:
            with transaction.atomic(using=database):
                _mail(1).send()
            assert wait_until(lambda: _lane_depth(amqp_connection, settings) == 1, timeout=20)
        finally:
            relay.join(timeout=10)
        assert not relay.thread.is_alive()
        assert 0 == _rows(database, settings)

    def test_depth_and_age_are_exported(
        self, outbox: None, database: str, settings: Settings
    ) -> None:
        """mailfleet_outbox_depth counts the rows; the age is that of the oldest (0 if none)."""
        collector = OutboxCollector(settings.namespace, database)
        empty = {metric.name: metric.samples[0].value for metric in collector.collect()}
        for number in range(3):
            _mail(number).send()
        OutboxMessage.objects.using(database).filter(namespace=settings.namespace).update(
            created_at=timezone.now() - timedelta(minutes=5)
        )

        full = {metric.name: metric.samples[0].value for metric in collector.collect()}

        assert {"mailfleet_outbox_depth": 0, "mailfleet_outbox_age_seconds": 0} == empty
        assert 3 == full["mailfleet_outbox_depth"]
        assert 300 <= full["mailfleet_outbox_age_seconds"] < 3600


class TestTwoRelays:
    def test_two_relays_at_once_never_publish_one_row_twice(
        self,
        settings: Settings,
        postgres: str,
        amqp_connection: Connection,
    ) -> None:
        """PostgreSQL, 400 rows, two relays draining at once in batches of 10 (FOR UPDATE
        SKIP LOCKED): 400 published in all, each row by one relay, none twice."""
        with override_settings(
            MAILFLEET_NAMESPACE=settings.namespace,
            MAILFLEET_SETTINGS={"amqp_url": settings.amqp_url.get_secret_value()},
            MAILFLEET_DJANGO_OUTBOX=True,
            MAILFLEET_DATABASE=postgres,
        ):
            with transaction.atomic(using=postgres):
                connection = get_connection(BACKEND)
                connection.send_messages([_mail(number) for number in range(400)])
            moved: Counter[str] = Counter()
            start = threading.Barrier(2)

            def drain(name: str) -> None:
                relay = OutboxRelay(settings, using=postgres, batch=10)
                try:
                    start.wait()
                    moved[name] = relay.drain()
                finally:
                    relay.close()
                    connections.close_all()

            threads = [threading.Thread(target=drain, args=(n,)) for n in ("a", "b")]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(120)

        assert 400 == moved["a"] + moved["b"]
        assert moved["a"] > 0, moved  # both took part
        assert moved["b"] > 0, moved
        assert wait_until(lambda: _lane_depth(amqp_connection, settings) >= 400, timeout=20)
        assert 400 == _lane_depth(amqp_connection, settings)
        assert 0 == _rows(postgres, settings)


class TestLogging:
    def test_mailfleet_logs_through_stdlib_logging_not_the_console(
        self,
        settings: Settings,
        capsys: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """structlog unconfigured (a Django project): nothing on stdout or stderr, the
        events are records of the `mailfleet.django` logger, filtered by its level."""
        configure_django()
        saved = structlog.get_config()
        structlog.reset_defaults()
        try:
            caplog.set_level(logging.DEBUG, logger="mailfleet")
            with override_settings(
                MAILFLEET_NAMESPACE=settings.namespace,
                MAILFLEET_SETTINGS={"amqp_url": settings.amqp_url.get_secret_value()},
            ):
                _mail(1, on_commit=False).send()
            debug = [r for r in caplog.records if r.name == "mailfleet.django"]
            caplog.clear()
            caplog.set_level(logging.WARNING, logger="mailfleet")
            with override_settings(
                MAILFLEET_NAMESPACE=settings.namespace,
                MAILFLEET_SETTINGS={"amqp_url": settings.amqp_url.get_secret_value()},
            ):
                _mail(2, on_commit=False).send()
            warning = [r for r in caplog.records if r.name.startswith("mailfleet")]
        finally:
            structlog.configure(**saved)

        assert ("", "") == (capsys.readouterr().out, capsys.readouterr().err)
        assert ["django_published"] == [str(record.msg) for record in debug]
        assert [] == warning


class _Output:
    """A stdout for call_command that keeps what was written."""

    def __init__(self) -> None:
        self.text = ""

    def write(self, text: str) -> None:
        self.text += text

    def flush(self) -> None:
        return None
