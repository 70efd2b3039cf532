"""Throwaway RabbitMQ and Redis for a first run (``mailfleet demo``) and for the tests.

With a Docker engine: testcontainers (when installed). Else the local ``rabbitmq-server``
and ``redis-server`` binaries, on free loopback ports, in a temporary directory, each with
a config file of its own: a system config such as ``/etc/rabbitmq/rabbitmq.conf`` may pin
the listener to 5672, so a port variable alone is not enough. Else
:class:`ServersMissing` says, in two lines, what to install. Everything started is
stopped and its directory removed on the way out; nothing shared is touched (an ``epmd``
that RabbitMQ starts, when none ran, is Erlang's name service and outlives the node).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from kombu.connection import Connection

from mailfleet.shared.errors import MailfleetError

RABBITMQ_START_TIMEOUT = 90.0
REDIS_START_TIMEOUT = 20.0
# Debian's /usr/sbin/rabbitmq-server switches to the rabbitmq user when run as root; the
# script behind it runs the node as whoever calls it.
_RABBITMQ_SCRIPT = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")


class ServersMissing(MailfleetError):
    """Neither a Docker engine nor the rabbitmq-server and redis-server binaries."""


@dataclass(frozen=True)
class ServerUrls:
    amqp_url: str
    redis_url: str
    how: str  # "local binaries" or "testcontainers"


def free_port() -> int:
    """A loopback port nothing listens on now (bind port 0 and ask)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def docker_engine() -> bool:
    docker = shutil.which("docker")
    if docker is None:
        return False
    result = subprocess.run([docker, "info"], capture_output=True, check=False, timeout=20)  # noqa: S603 (the docker found on PATH)
    return result.returncode == 0


def rabbitmq_binary() -> str | None:
    if _RABBITMQ_SCRIPT.is_file():
        return str(_RABBITMQ_SCRIPT)
    return shutil.which("rabbitmq-server")


def missing_binaries() -> list[str]:
    missing = [] if rabbitmq_binary() else ["rabbitmq-server"]
    return missing + ([] if shutil.which("redis-server") else ["redis-server"])


def _stop(process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """SIGTERM the server's process group (RabbitMQ's node runs under its script), then
    SIGKILL what is left after ``timeout``."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    # The node (beam) may outlive its script for a moment: end the group's stragglers.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def _wait(ready: object, process: subprocess.Popen[bytes], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise MailfleetError(f"{what} exited with {process.returncode} while starting")
        if callable(ready) and ready():
            return
        time.sleep(0.25)
    raise MailfleetError(f"{what} did not start within {timeout:.0f} s")


def _redis_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _amqp_answers(url: str) -> bool:
    try:
        with Connection(url, connect_timeout=2) as connection:
            connection.connect()
            return True
    except Exception:  # not up yet, whichever way it fails
        return False


@contextlib.contextmanager
def local_redis(directory: Path, log: Path) -> Iterator[str]:
    port = free_port()
    config = directory / "redis.conf"
    config.write_text(
        f'port {port}\nbind 127.0.0.1\nsave ""\nappendonly no\ndir {directory}\n'
        "daemonize no\nprotected-mode yes\n"
    )
    with log.open("wb") as output:
        process = subprocess.Popen(  # noqa: S603 (the redis-server found on PATH)
            [shutil.which("redis-server") or "redis-server", str(config)],
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait(lambda: _redis_answers(port), process, REDIS_START_TIMEOUT, "redis-server")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        _stop(process)


@contextlib.contextmanager
def local_rabbitmq(directory: Path, log: Path) -> Iterator[str]:
    binary = rabbitmq_binary()
    assert binary is not None
    port, dist_port = free_port(), free_port()
    while dist_port == port:
        dist_port = free_port()
    home = directory / "rabbitmq"
    home.mkdir()
    config = home / "rabbitmq.conf"
    config.write_text(
        f"listeners.tcp.1 = 127.0.0.1:{port}\n"
        "loopback_users.guest = true\n"
        "log.console = true\nlog.file = false\n"
    )
    (home / "rabbitmq-env.conf").write_text("")  # not the system's (it names the node)
    (home / "enabled_plugins").write_text("[].\n")
    env = {
        **os.environ,
        "HOME": str(home),  # its own Erlang cookie
        "RABBITMQ_CONFIG_FILE": str(config),
        "RABBITMQ_CONF_ENV_FILE": str(home / "rabbitmq-env.conf"),
        "RABBITMQ_ADVANCED_CONFIG_FILE": str(home / "advanced.config"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(home / "enabled_plugins"),
        "RABBITMQ_NODENAME": f"mailfleet-{uuid.uuid4().hex[:8]}@localhost",
        "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
        "RABBITMQ_NODE_PORT": str(port),
        "RABBITMQ_DIST_PORT": str(dist_port),
        "RABBITMQ_MNESIA_BASE": str(home / "mnesia"),
        "RABBITMQ_LOG_BASE": str(home / "log"),
        "ERL_EPMD_ADDRESS": "127.0.0.1",
        "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
    }
    url = f"amqp://guest:guest@127.0.0.1:{port}/%2F"
    with log.open("wb") as output:
        process = subprocess.Popen(  # noqa: S603 (the rabbitmq-server found on PATH)
            [binary],
            env=env,
            cwd=home,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait(lambda: _amqp_answers(url), process, RABBITMQ_START_TIMEOUT, "rabbitmq-server")
        yield url
    finally:
        _stop(process)


@contextlib.contextmanager
def _containers() -> Iterator[ServerUrls]:
    from testcontainers.rabbitmq import RabbitMqContainer  # noqa: PLC0415 (only with Docker)
    from testcontainers.redis import RedisContainer  # noqa: PLC0415

    with RabbitMqContainer("rabbitmq:3.13") as rabbit, RedisContainer("redis:7") as cache:
        amqp = f"amqp://guest:guest@{rabbit.get_container_host_ip()}:"
        amqp += f"{rabbit.get_exposed_port(5672)}/%2F"
        redis_url = f"redis://{cache.get_container_host_ip()}:{cache.get_exposed_port(6379)}/0"
        yield ServerUrls(amqp, redis_url, "testcontainers")


def _testcontainers_installed() -> bool:
    from importlib.util import find_spec  # noqa: PLC0415

    return find_spec("testcontainers") is not None


@contextlib.contextmanager
def own_servers() -> Iterator[ServerUrls]:
    """RabbitMQ and Redis of our own for the block, removed afterwards."""
    if _testcontainers_installed() and docker_engine():
        with _containers() as urls:
            yield urls
        return
    missing = missing_binaries()
    if missing:
        raise ServersMissing(
            f"no RabbitMQ and Redis to run on: neither a Docker engine nor {' and '.join(missing)}"
            "\n  install them: apt-get install -y rabbitmq-server redis-server "
            "(or start a Docker engine)"
        )
    directory = Path(tempfile.mkdtemp(prefix="mailfleet-servers-"))
    try:
        with (
            local_redis(directory, directory / "redis.log") as redis_url,
            local_rabbitmq(directory, directory / "rabbitmq.log") as amqp_url,
        ):
            yield ServerUrls(amqp_url, redis_url, "local binaries")
    finally:
        shutil.rmtree(directory, ignore_errors=True)
