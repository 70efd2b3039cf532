"""Finding the real RabbitMQ and Redis the integration tests run against.

Order: ``MAILFLEET_TEST_AMQP_URL`` / ``MAILFLEET_TEST_REDIS_URL``; else the servers on
localhost when they answer; else testcontainers when a Docker engine is present. With none
of those the test session fails (never skips): a skipped integration test proves nothing.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
from collections.abc import Iterator

LOCAL_AMQP = "amqp://guest:guest@127.0.0.1:5672/%2F"
LOCAL_REDIS = "redis://127.0.0.1:6379/0"


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
    elif _answers("127.0.0.1", 5672):
        yield LOCAL_AMQP
    elif _docker_engine():
        from testcontainers.rabbitmq import RabbitMqContainer

        with RabbitMqContainer("rabbitmq:3.13-management") as container:
            host = container.get_container_host_ip()
            port = container.get_exposed_port(5672)
            yield f"amqp://guest:guest@{host}:{port}/%2F"
    else:
        raise RuntimeError(
            "no RabbitMQ: set MAILFLEET_TEST_AMQP_URL, start one on 127.0.0.1:5672 "
            "(rabbitmq-server -detached), or run a Docker engine for testcontainers"
        )


@contextlib.contextmanager
def redis_url() -> Iterator[str]:
    if url := os.environ.get("MAILFLEET_TEST_REDIS_URL"):
        yield url
    elif _answers("127.0.0.1", 6379):
        yield LOCAL_REDIS
    elif _docker_engine():
        from testcontainers.redis import RedisContainer

        with RedisContainer("redis:7") as container:
            host = container.get_container_host_ip()
            port = container.get_exposed_port(6379)
            yield f"redis://{host}:{port}/0"
    else:
        raise RuntimeError(
            "no Redis: set MAILFLEET_TEST_REDIS_URL, start one on 127.0.0.1:6379, "
            "or run a Docker engine for testcontainers"
        )
