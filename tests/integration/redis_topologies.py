"""Throw-away Redis topologies on loopback for the high-availability tests: a Redis Cluster
of three primaries, and a primary with one replica watched by three sentinels.

Each server runs from a directory of its own (config, nodes file, nothing else kept) on the
ports the caller gives; ``stop()`` kills every process it started and removes the directory.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import redis

SERVICE = "mf"  # the sentinels' name of the monitored primary


def _binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed; the HA tests need it")
    return binary


def _wait_for(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing answers on 127.0.0.1:{port}")


class Servers:
    """Processes started from config files under one temporary directory."""

    def __init__(self, label: str) -> None:
        self.root = Path(tempfile.mkdtemp(prefix=f"mailfleet-{label}-"))
        self.processes: dict[int, subprocess.Popen[bytes]] = {}

    def start(self, port: int, lines: list[str], *, sentinel: bool = False) -> None:
        directory = self.root / str(port)
        directory.mkdir(exist_ok=True)
        config = directory / "redis.conf"
        base = [f"port {port}", "bind 127.0.0.1", f'dir "{directory}"', 'save ""']
        config.write_text("\n".join([*base, "appendonly no", *lines]) + "\n")
        command = [_binary(), str(config), *(["--sentinel"] if sentinel else [])]
        self.processes[port] = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        _wait_for(port)

    def kill(self, port: int) -> None:
        process = self.processes.pop(port)
        process.kill()
        process.wait(timeout=10)

    def stop(self) -> None:
        for port in list(self.processes):
            self.kill(port)
        shutil.rmtree(self.root, ignore_errors=True)


class ClusterOfThree:
    """Three primaries, no replicas, every slot assigned."""

    def __init__(self, ports: tuple[int, int, int]) -> None:
        self.ports = ports
        self._servers = Servers("cluster")

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{port}" for port in self.ports)

    def start(self) -> None:
        for port in self.ports:
            self._servers.start(
                port, ["cluster-enabled yes", f"cluster-config-file nodes-{port}.conf"]
            )
        nodes = [f"127.0.0.1:{port}" for port in self.ports]
        subprocess.run(
            [
                "redis-cli",
                "--cluster",
                "create",
                *nodes,
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        deadline = time.monotonic() + 30
        while not all(self._ok(port) for port in self.ports):
            if time.monotonic() > deadline:
                raise RuntimeError("the Redis Cluster did not reach cluster_state:ok")
            time.sleep(0.1)

    @staticmethod
    def _ok(port: int) -> bool:
        client = redis.Redis(port=port)
        try:
            return "ok" == client.execute_command("CLUSTER INFO").get("cluster_state")
        finally:
            client.close()

    def stop(self) -> None:
        self._servers.stop()


class SentinelGroup:
    """A primary and one replica, watched by three sentinels that need two to agree."""

    def __init__(self, primary: int, replica: int, sentinels: tuple[int, int, int]) -> None:
        self.primary, self.replica, self.sentinels = primary, replica, sentinels
        self._servers = Servers("sentinel")

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinels)
        return f"redis+sentinel://{hosts}/{SERVICE}/0"

    def start(self) -> None:
        self._servers.start(self.primary, [])
        self._servers.start(self.replica, [f"replicaof 127.0.0.1 {self.primary}"])
        watch = [
            f"sentinel monitor {SERVICE} 127.0.0.1 {self.primary} 2",
            f"sentinel down-after-milliseconds {SERVICE} 1000",
            f"sentinel failover-timeout {SERVICE} 5000",
            f"sentinel parallel-syncs {SERVICE} 1",
        ]
        for port in self.sentinels:
            self._servers.start(port, watch, sentinel=True)
        deadline = time.monotonic() + 30
        while not self._replica_in_sync():
            if time.monotonic() > deadline:
                raise RuntimeError("the replica did not sync with the primary")
            time.sleep(0.1)

    def _replica_in_sync(self) -> bool:
        client = redis.Redis(port=self.replica)
        try:
            info = client.info("replication")
        finally:
            client.close()
        return info.get("master_link_status") == "up"

    def primary_port(self) -> int | None:
        """The primary's port as the first sentinel names it now."""
        client = redis.Redis(port=self.sentinels[0])
        try:
            address = client.execute_command("SENTINEL", "get-master-addr-by-name", SERVICE)
        finally:
            client.close()
        return int(address[1]) if address else None

    def kill_primary(self) -> None:
        self._servers.kill(self.primary)

    def stop(self) -> None:
        self._servers.stop()
