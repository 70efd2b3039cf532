"""Fixtures for integration tests: real RabbitMQ and Redis, an in-process SMTP relay, and a
namespace of its own for every test, removed afterwards."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis
from kombu.connection import Connection

from mailfleet.producer.connection import open_connection
from mailfleet.producer.devtools.sink import SmtpSink
from mailfleet.producer.publisher import Producer
from mailfleet.producer.topology import declare, delete, topology_of
from mailfleet.shared.relays import Relay
from mailfleet.shared.settings import Settings
from tests.integration.relays import ScriptedReplies
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
def namespace(redis_client: redis.Redis) -> Iterator[str]:
    name = f"test-{uuid.uuid4().hex[:10]}"
    yield name
    for key in redis_client.scan_iter(match=f"{name}:*"):
        redis_client.delete(key)


@pytest.fixture
def settings(
    amqp_url: str, redis_server_url: str, namespace: str, smtp_server: SmtpSink
) -> Iterator[Settings]:
    """Settings for one test: its own namespace, the test relay, short retry delays."""
    settings = Settings(
        amqp_url=amqp_url,
        redis_url=redis_server_url,
        namespace=namespace,
        smtp_relays=[Relay.parse(smtp_server.url)],
        retry_delays=[0.3, 0.6],
        max_attempts=3,
        concurrency=4,
        prefetch=10,
        shutdown_grace=10.0,
        metrics_port=0,
    )
    connection = open_connection(settings)
    declare(connection, topology_of(settings))
    yield settings
    delete(connection, topology_of(settings))
    connection.release()


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
