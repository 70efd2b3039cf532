"""A throw-away RabbitMQ cluster of three nodes on loopback, for the failover test.

Each node has its own node name (``mf-test-c<i>@localhost``), AMQP and distribution ports,
config file, enabled-plugins file (none), data and log directories, all under one temporary
directory; the system node's ``/etc/rabbitmq/rabbitmq.conf`` (which pins 5672) is never read.
The nodes register with the machine's epmd under their own names. ``stop()`` kills every
node it started and removes the directory.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

_BIN = Path("/usr/lib/rabbitmq/bin")  # the scripts themselves, not the wrapper that su's
_TIMEOUT = 120


def _script(name: str) -> str:
    path = _BIN / name
    found = str(path) if path.exists() else shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} is not installed; the RabbitMQ cluster test needs it")
    return found


class RabbitNode:
    def __init__(self, root: Path, index: int, amqp_port: int, dist_port: int) -> None:
        self.name = f"mf-test-c{index}@localhost"
        self.amqp_port = amqp_port
        self.dist_port = dist_port
        self.home = root / f"c{index}"
        self.home.mkdir()
        (self.home / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{amqp_port}\n"
            "loopback_users.guest = true\n"
            "log.console = false\n"
        )
        (self.home / "enabled_plugins").write_text("[].\n")
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.amqp_port}/%2F"

    def _env(self) -> dict[str, str]:
        return {
            **os.environ,
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_PORT": str(self.amqp_port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_CONFIG_FILE": str(self.home / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.home / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(self.home / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.home / "log"),
            "RABBITMQ_PID_FILE": str(self.home / "pid"),
            "RABBITMQ_USE_LONGNAME": "false",
        }

    def start(self) -> None:
        """Start the node and wait until it runs."""
        with (self.home / "console.log").open("ab") as console:
            self._process = subprocess.Popen(
                [_script("rabbitmq-server")],
                env=self._env(),
                stdout=console,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + _TIMEOUT
        while True:  # await_startup fails at once until the node has registered with epmd
            try:
                self.ctl("await_startup", "--timeout", str(_TIMEOUT))
                return
            except RuntimeError:
                if time.monotonic() > deadline or self._process.poll() is not None:
                    raise
                time.sleep(0.5)

    def ctl(self, *args: str) -> str:
        result = subprocess.run(
            [_script("rabbitmqctl"), "-q", "-n", self.name, *args],
            capture_output=True,
            text=True,
            timeout=_TIMEOUT + 10,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)} on {self.name}: {result.stderr}")
        return result.stdout

    def kill(self) -> None:
        """SIGKILL the node's whole process group (the Erlang VM and its helpers)."""
        if self._process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._process.pid, signal.SIGKILL)
        self._process.wait(timeout=30)
        self._process = None


class RabbitCluster:
    """Three nodes joined into one cluster (the second and third join the first)."""

    def __init__(self, amqp_ports: tuple[int, ...], dist_ports: tuple[int, ...]) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="mailfleet-rabbit-"))
        self.nodes = [
            RabbitNode(self.root, i + 1, amqp, dist)
            for i, (amqp, dist) in enumerate(zip(amqp_ports, dist_ports, strict=True))
        ]

    @property
    def url(self) -> str:
        """MAILFLEET_AMQP_URL for the whole cluster (a comma list)."""
        return ",".join(node.url for node in self.nodes)

    def start(self) -> None:
        with ThreadPoolExecutor(len(self.nodes)) as pool:
            list(pool.map(RabbitNode.start, self.nodes))
        first = self.nodes[0]
        for node in self.nodes[1:]:
            node.ctl("stop_app")
            node.ctl("join_cluster", first.name)
            node.ctl("start_app")
        running = first.ctl("eval", "length(rabbit_nodes:all_running()).").strip()
        if running != str(len(self.nodes)):
            raise RuntimeError(f"only {running} of {len(self.nodes)} nodes run in the cluster")

    def node(self, name: str) -> RabbitNode:
        (found,) = [node for node in self.nodes if node.name == name]
        return found

    def leader_of(self, queue: str, asking: RabbitNode | None = None) -> str:
        """The node that leads quorum queue ``queue`` now."""
        node = asking or self.nodes[0]
        for line in node.ctl("list_queues", "name", "leader", "--no-table-headers").splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] == queue:
                return parts[1]
        raise RuntimeError(f"no leader listed for {queue}")

    def members_of(self, queue: str) -> list[str]:
        for line in (
            self.nodes[0].ctl("list_queues", "name", "members", "--no-table-headers").splitlines()
        ):
            name, _, members = line.partition("\t")
            if name == queue:
                return sorted(member.strip(" []\"'") for member in members.split(","))
        raise RuntimeError(f"{queue} is not listed")

    def stop(self) -> None:
        for node in self.nodes:
            node.kill()
        shutil.rmtree(self.root, ignore_errors=True)
