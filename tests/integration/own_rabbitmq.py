"""A throw-away RabbitMQ node of our own, for tests that must change the broker (alarms):
its own node name, AMQP and distribution ports, config file and data directories, so the
system node (5672, 25672) is never touched. Stopped and removed afterwards."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

_BIN = Path("/usr/lib/rabbitmq/bin")
_START_TIMEOUT = 60.0


def _binary(name: str) -> str:
    found = _BIN / name
    if found.exists():
        return str(found)
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(
            f"{name} is not installed; alarm tests need a RabbitMQ node of their own"
        )
    return path


class OwnRabbitMQ:
    def __init__(self, port: int, dist_port: int, name: str) -> None:
        self.port = port
        self.node = f"{name}@localhost"
        self._dir = Path(tempfile.mkdtemp(prefix=f"{name}-"))
        config = self._dir / "rabbitmq.conf"
        config.write_text(f"listeners.tcp.default = 127.0.0.1:{port}\nloopback_users = none\n")
        plugins = self._dir / "enabled_plugins"
        plugins.write_text("[].\n")
        self._env = {
            **os.environ,
            "RABBITMQ_CONFIG_FILE": str(config),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_PORT": str(port),
            "RABBITMQ_DIST_PORT": str(dist_port),
            "RABBITMQ_MNESIA_BASE": str(self._dir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self._dir / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(plugins),
            "RABBITMQ_PID_FILE": str(self._dir / "pid"),
        }
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"

    def start(self) -> None:
        self._process = subprocess.Popen(
            [_binary("rabbitmq-server")],
            env=self._env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"rabbitmq node {self.node} exited on start")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port)):
                self.ctl("await_startup")
                return
            time.sleep(0.2)
        raise RuntimeError(f"rabbitmq node {self.node} did not start in {_START_TIMEOUT:.0f}s")

    def ctl(self, *args: str) -> str:
        result = subprocess.run(
            [_binary("rabbitmqctl"), "-n", self.node, *args],
            env=self._env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return result.stdout

    def memory_alarm(self, on: bool) -> None:
        """Set (a watermark far below what the node uses) or clear the memory alarm."""
        self.ctl("set_vm_memory_high_watermark", "0.000001" if on else "0.4")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            alarmed = "memory" in self.ctl("eval", "rabbit_alarm:get_alarms().")
            if alarmed == on:
                return
            time.sleep(0.1)
        raise RuntimeError(f"the memory alarm of {self.node} did not turn {'on' if on else 'off'}")

    def stop(self) -> None:
        if self._process is not None:
            with contextlib.suppress(subprocess.SubprocessError):
                self.ctl("stop")
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self._process.pid, 9)
                self._process.wait(timeout=10)
            self._process = None
        shutil.rmtree(self._dir, ignore_errors=True)


@contextlib.contextmanager
def own_rabbitmq(port: int, dist_port: int, name: str) -> Iterator[OwnRabbitMQ]:
    node = OwnRabbitMQ(port, dist_port, name)
    try:
        node.start()
        yield node
    finally:
        node.stop()
