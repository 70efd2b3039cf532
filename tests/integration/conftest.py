"""Fixtures for integration tests: real RabbitMQ and Redis, an in-process SMTP relay, and a
namespace of its own for every test, removed afterwards (see tests/namespaces.py); a run
that leaves any of its namespaces behind fails."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from kombu.connection import Connection
from pydantic import SecretStr

from mailfleet.producer.connection import open_connection
from mailfleet.producer.devtools.sink import SmtpSink
from mailfleet.producer.publisher import Producer
from mailfleet.producer.topology import declare, topology_of
from mailfleet.shared.relays import Relay
from mailfleet.shared.settings import Settings
from tests.integration.helpers import stop_workers
from tests.integration.relays import ScriptedReplies
from tests.namespaces import (
    RUN_PREFIX,
    TEST_RETRY_DELAYS,
    created_namespaces,
    find_leftovers,
    new_namespace,
    remove_leftovers,
    remove_namespace,
)
from tests.servers import rabbitmq_url, redis_url

_LEFTOVERS = pytest.StashKey[list[str]]()


@pytest.fixture(scope="session")
def amqp_url() -> Iterator[str]:
    with rabbitmq_url() as url:
        yield url


@pytest.fixture(scope="session")
def redis_server_url() -> Iterator[str]:
    with redis_url() as url:
        yield url


@pytest.fixture
def redis_client(redis_server_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server_url)
    yield client
    client.close()


@pytest.fixture
def smtp_server() -> Iterator[SmtpSink]:
    with SmtpSink(pipelining=True) as sink:
        yield sink


@pytest.fixture(scope="session", autouse=True)
def no_namespace_left_behind(
    request: pytest.FixtureRequest, amqp_url: str, redis_server_url: str
) -> Iterator[None]:
    """After the last test (while the servers still run): find what is left under the run's
    prefix, keep the report for :func:`pytest_sessionfinish` and remove it."""
    yield
    leftovers = find_leftovers(amqp_url, redis_server_url, RUN_PREFIX, created_namespaces())
    request.config.stash[_LEFTOVERS] = leftovers.report()
    if leftovers:
        remove_leftovers(amqp_url, redis_server_url, leftovers)


# Last: pytest's own sessionfinish tears the session fixtures down when a run stops early
# (-x, Ctrl-C), and only then is the report there.
@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """Turn the run red when it left anything behind."""
    if session.config.stash.get(_LEFTOVERS, None):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Name every leftover (or say there were none) above the final counts."""
    report = terminalreporter.config.stash.get(_LEFTOVERS, None)
    if report is None:  # no integration test ran
        return
    if not report:
        made = len(created_namespaces())
        terminalreporter.write_line(f"no namespace left behind under {RUN_PREFIX}* ({made} made)")
        return
    terminalreporter.write_sep("=", f"left behind under {RUN_PREFIX}* (now removed)", red=True)
    for line in report:
        terminalreporter.write_line(line, red=True)


@pytest.fixture
def namespace(
    request: pytest.FixtureRequest, amqp_url: str, redis_server_url: str
) -> Iterator[str]:
    """A namespace for one test. Afterwards, passed or failed, the workers the test started
    are stopped (or they would declare it again) and the whole namespace is removed."""
    name = new_namespace(request.node.nodeid)
    yield name
    stop_workers()
    remove_namespace(amqp_url, redis_server_url, name)


@pytest.fixture
def settings(
    amqp_url: str, redis_server_url: str, namespace: str, smtp_server: SmtpSink
) -> Settings:
    """Settings for one test: its own namespace, the test relay, short retry delays."""
    settings = Settings(
        amqp_url=SecretStr(amqp_url),
        redis_url=SecretStr(redis_server_url),
        namespace=namespace,
        smtp_relays=[Relay.parse(smtp_server.url)],
        retry_delays=TEST_RETRY_DELAYS,
        max_attempts=3,
        concurrency=4,
        prefetch=10,
        shutdown_grace=10.0,
        metrics_port=0,
    )
    connection = open_connection(settings)
    try:
        declare(connection, topology_of(settings))
    finally:
        connection.release()
    return settings


@pytest.fixture
def amqp_connection(settings: Settings) -> Iterator[Connection]:
    connection = open_connection(settings)
    yield connection
    connection.release()


@pytest.fixture
def producer(settings: Settings) -> Iterator[Producer]:
    with Producer(settings) as producer:
        yield producer


@pytest.fixture
def replies(smtp_server: SmtpSink) -> ScriptedReplies:
    """Scripted per-recipient replies on the test relay (accept everyone else)."""
    scripted = ScriptedReplies()
    smtp_server.rcpt_reply = scripted.rcpt
    return scripted


@pytest.fixture
def events_queue(settings: Settings, amqp_connection: Connection) -> Iterator[str]:
    """A queue of every event of the test's namespace, as a user would bind one."""
    name = f"{settings.names.events_exchange}.test"
    channel = amqp_connection.channel()
    channel.queue_declare(name, durable=True)
    channel.queue_bind(name, settings.names.events_exchange, "#")
    try:
        yield name
    finally:
        channel.queue_delete(name)
        channel.close()
