"""Fixtures for integration tests: real RabbitMQ and Redis, an in-process SMTP relay, and a
namespace of its own for every test, removed afterwards (see tests/namespaces.py)."""

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
from tests.namespaces import TEST_RETRY_DELAYS, new_namespace, remove_namespace
from tests.servers import rabbitmq_url, redis_url


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


@pytest.fixture
def namespace(amqp_url: str, redis_server_url: str) -> Iterator[str]:
    """A namespace for one test. Afterwards, passed or failed, the workers the test started
    are stopped (or they would declare it again) and the whole namespace is removed."""
    name = new_namespace()
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
