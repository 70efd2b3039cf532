"""Finding the real RabbitMQ and Redis the integration tests run against.

Order: ``MAILFLEET_TEST_AMQP_URL`` / ``MAILFLEET_TEST_REDIS_URL``; else the servers on
localhost when they answer; else testcontainers when a Docker engine is present; else
throwaway servers from the local ``rabbitmq-server`` and ``redis-server`` binaries, as
``mailfleet demo`` starts them (``producer/devtools/own_servers.py``). With none of those
the test session fails (never skips): a skipped integration test proves nothing.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from mailfleet.producer.devtools.own_servers import local_rabbitmq, local_redis, rabbitmq_binary

LOCAL_AMQP = "amqp://guest:guest@127.0.0.1:5672/%2F"
LOCAL_REDIS = "redis://127.0.0.1:6379/0"
OWN_SERVERS_VARIABLE = "MAILFLEET_TEST_OWN_SERVERS"  # set: always the throwaway servers


def _own_forced() -> bool:
    return bool(os.environ.get(OWN_SERVERS_VARIABLE))


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def _docker_engine() -> bool:
    if shutil.which("docker") is None:
        return False
    result = subprocess.run(["docker", "info"], capture_output=True, check=False, timeout=20)
    return result.returncode == 0


@contextlib.contextmanager
def rabbitmq_url() -> Iterator[str]:
    if url := os.environ.get("MAILFLEET_TEST_AMQP_URL"):
        yield url
    elif _answers("127.0.0.1", 5672) and not _own_forced():
        yield LOCAL_AMQP
    elif _docker_engine() and not _own_forced():
        from testcontainers.rabbitmq import RabbitMqContainer

        with RabbitMqContainer("rabbitmq:3.13-management") as container:
            host = container.get_container_host_ip()
            port = container.get_exposed_port(5672)
            yield f"amqp://guest:guest@{host}:{port}/%2F"
    elif rabbitmq_binary() is not None:
        with _scratch() as directory, local_rabbitmq(directory, directory / "log") as url:
            yield url
    else:
        raise RuntimeError(
            "no RabbitMQ: set MAILFLEET_TEST_AMQP_URL, start one on 127.0.0.1:5672 "
            "(rabbitmq-server -detached), run a Docker engine for testcontainers, "
            "or install rabbitmq-server (apt-get install -y rabbitmq-server)"
        )


@contextlib.contextmanager
def redis_url() -> Iterator[str]:
    if url := os.environ.get("MAILFLEET_TEST_REDIS_URL"):
        yield url
    elif _answers("127.0.0.1", 6379) and not _own_forced():
        yield LOCAL_REDIS
    elif _docker_engine() and not _own_forced():
        from testcontainers.redis import RedisContainer

        with RedisContainer("redis:7") as container:
            host = container.get_container_host_ip()
            port = container.get_exposed_port(6379)
            yield f"redis://{host}:{port}/0"
    elif shutil.which("redis-server") is not None:
        with _scratch() as directory, local_redis(directory, directory / "log") as url:
            yield url
    else:
        raise RuntimeError(
            "no Redis: set MAILFLEET_TEST_REDIS_URL, start one on 127.0.0.1:6379, "
            "run a Docker engine for testcontainers, "
            "or install redis-server (apt-get install -y redis-server)"
        )


@contextlib.contextmanager
def _scratch() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="mailfleet-test-servers-"))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)
