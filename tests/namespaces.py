"""Test namespaces: each test gets its own, removed after it, and at the end of the run
nothing under the run's prefix may be left on the broker or in Redis.

The broker and Redis can be shared with other runs (other checkouts, CI), so every
namespace of a run starts with ``test-<run id>-``: that prefix tells this run's names from
theirs, and where rabbitmqctl can list the broker, finding leftovers needs no list of the
names the tests used.
"""

from __future__ import annotations

import functools
import os
import re
import secrets
import shutil
import subprocess
import urllib.parse
import uuid
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import amqp.exceptions
import redis
from kombu.connection import Connection
from pydantic import SecretStr

from mailfleet.producer.devtools.namespace import remove_namespace as remove_mailfleet_namespace
from mailfleet.shared.names import Names
from mailfleet.shared.settings import Settings
from mailfleet.shared.topology import Topology, build_topology

RUN_ID_VARIABLE = "MAILFLEET_TEST_RUN_ID"  # set it to choose the run's prefix
_RUN_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,30}")

# The delay tiers the integration fixtures configure; with the defaults (the Django backend
# and commands given only a namespace declare those), every tier a test namespace can have.
TEST_RETRY_DELAYS = [0.3, 0.6]
_DEFAULT_RETRY_DELAYS: list[float] = Settings.model_fields["retry_delays"].get_default(
    call_default_factory=True
)
ALL_RETRY_DELAYS = sorted({*TEST_RETRY_DELAYS, *_DEFAULT_RETRY_DELAYS})

_RABBITMQCTL_TIMEOUT = 30.0
_PASSIVE_CONNECTIONS = 8


def _run_id() -> str:
    run_id = os.environ.get(RUN_ID_VARIABLE) or secrets.token_hex(3)
    if _RUN_ID.fullmatch(run_id) is None:
        raise ValueError(f"{RUN_ID_VARIABLE}={run_id!r}: use 1-31 of a-z, 0-9 and '-'")
    return run_id


RUN_ID = _run_id()
RUN_PREFIX = f"test-{RUN_ID}-"

_owners: dict[str, str] = {}  # namespace -> the test that created it, for the report


def new_namespace(owner: str) -> str:
    """A fresh namespace under the run's prefix, recorded as ``owner``'s."""
    namespace = f"{RUN_PREFIX}{uuid.uuid4().hex[:10]}"
    _owners[namespace] = owner
    return namespace


def created_namespaces() -> list[str]:
    return list(_owners)


def whole_topology(namespace: str) -> Topology:
    """Every queue and exchange a test namespace can have, whatever its settings."""
    return build_topology(Names(namespace), ALL_RETRY_DELAYS, delivery_limit=2)


def remove_namespace(amqp_url: str, redis_url: str, namespace: str) -> None:
    """Delete the namespace's queues (lanes, every delay tier, dead letters), exchanges and
    Redis keys; deleting what does not exist is no error."""
    settings = Settings(
        amqp_url=SecretStr(amqp_url),
        redis_url=SecretStr(redis_url),
        namespace=namespace,
        retry_delays=ALL_RETRY_DELAYS,
    )
    remove_mailfleet_namespace(settings)


def _namespace_of(name: str) -> str:
    """Queues and exchanges are ``<ns>`` or ``<ns>.<...>``, keys ``{<ns>}:<...>`` (or, in the
    layout before the hash tag, ``<ns>:<...>``); a namespace has none of '.:{}'."""
    return re.split(r"[.:}]", name.removeprefix("{"), maxsplit=1)[0]


@dataclass(frozen=True)
class Leftovers:
    queues: tuple[str, ...] = ()
    exchanges: tuple[str, ...] = ()
    keys: tuple[str, ...] = ()
    broker_listed_by: str = "rabbitmqctl"  # or "passive declares" of the known names

    def __bool__(self) -> bool:
        return bool(self.queues or self.exchanges or self.keys)

    def report(self) -> list[str]:
        """One line per leftover name, with the test that created its namespace."""
        lines = []
        for kind, found in (("queue", self.queues), ("exchange", self.exchanges)):
            lines += [f"{kind} {name}{_owned_by(name)}" for name in found]
        lines += [f"Redis key {key}{_owned_by(key)}" for key in self.keys]
        return lines


def _owned_by(name: str) -> str:
    owner = _owners.get(_namespace_of(name))
    return f"  (from {owner})" if owner else ""


def _vhost(amqp_url: str) -> str:
    return urllib.parse.unquote(urllib.parse.urlsplit(amqp_url).path[1:]) or "/"


def _rabbitmqctl_lists(amqp_url: str, *commands: str) -> list[list[str]] | None:
    """``rabbitmqctl <command> name`` for each command, run side by side (each takes about
    a second); None when rabbitmqctl is missing or fails."""
    rabbitmqctl = shutil.which("rabbitmqctl")
    if rabbitmqctl is None:
        return None
    processes = [
        subprocess.Popen(
            [rabbitmqctl, "-q", command, "-p", _vhost(amqp_url), "name", "--no-table-headers"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        for command in commands
    ]
    outputs = []
    for process in processes:
        try:
            stdout, _ = process.communicate(timeout=_RABBITMQCTL_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            return None
        if process.returncode != 0:
            return None
        outputs.append(stdout.split())
    return outputs


def _listed_broker_names(amqp_url: str, prefix: str) -> tuple[list[str], list[str]] | None:
    """Queues and exchanges starting with ``prefix`` as rabbitmqctl lists them, or None when
    rabbitmqctl cannot list this broker. A queue declared here for the purpose must show up
    in the listing, or rabbitmqctl is talking to another broker (a container, a remote one)."""
    probe = f"{prefix}probe-{uuid.uuid4().hex[:8]}"
    with Connection(amqp_url, connect_timeout=5) as connection:
        channel = connection.channel()
        channel.queue_declare(probe, exclusive=True, auto_delete=True)
        lists = _rabbitmqctl_lists(amqp_url, "list_queues", "list_exchanges")
    if lists is None or probe not in lists[0]:
        return None
    queues, exchanges = lists
    return (
        sorted(q for q in queues if q.startswith(prefix) and q != probe),
        sorted(e for e in exchanges if e.startswith(prefix)),
    )


def _exists(connection: Connection, name: str, *, queue: bool) -> bool:
    channel = connection.channel()
    try:
        if queue:
            channel.queue_declare(name, passive=True)
        else:
            channel.exchange_declare(name, "topic", passive=True)
    except amqp.exceptions.NotFound:
        return False
    finally:
        channel.close()  # py-amqp reopens a channel the broker closed
    return True


def _existing(amqp_url: str, candidates: list[tuple[str, bool]]) -> list[tuple[str, bool]]:
    with Connection(amqp_url, connect_timeout=5) as connection:
        return [
            (name, queue) for name, queue in candidates if _exists(connection, name, queue=queue)
        ]


def _declared_broker_names(amqp_url: str, namespaces: Iterable[str]) -> tuple[list[str], list[str]]:
    """The known names of ``namespaces`` that exist, by passive declares: blind to names
    outside :func:`whole_topology`, and a round trip or three each, hence spread over a few
    connections."""
    candidates = []
    for namespace in namespaces:
        topology = whole_topology(namespace)
        candidates += [(queue.name, True) for queue in topology.queues]
        candidates += [(exchange.name, False) for exchange in topology.exchanges]
    shares = [candidates[i::_PASSIVE_CONNECTIONS] for i in range(_PASSIVE_CONNECTIONS)]
    with ThreadPoolExecutor(_PASSIVE_CONNECTIONS) as pool:
        found = [
            hit for hits in pool.map(functools.partial(_existing, amqp_url), shares) for hit in hits
        ]
    return (
        sorted(name for name, queue in found if queue),
        sorted(name for name, queue in found if not queue),
    )


def find_leftovers(
    amqp_url: str, redis_url: str, prefix: str = RUN_PREFIX, namespaces: Iterable[str] = ()
) -> Leftovers:
    """What exists under ``prefix``: queues and exchanges from a rabbitmqctl listing (when it
    lists this broker; else the known names of ``namespaces``) and every Redis key."""
    listed = _listed_broker_names(amqp_url, prefix)
    if listed is not None:
        (queues, exchanges), how = listed, "rabbitmqctl"
    else:
        (queues, exchanges), how = _declared_broker_names(amqp_url, namespaces), "passive declares"
    client = redis.Redis.from_url(redis_url)
    try:
        keys = sorted(
            key.decode()
            for match in (f"{prefix}*", f"{{{prefix}*")  # both key layouts (Names.redis_prefix)
            for key in client.scan_iter(match=match, count=1000)
        )
    finally:
        client.close()
    return Leftovers(tuple(queues), tuple(exchanges), tuple(keys), how)


def remove_leftovers(amqp_url: str, redis_url: str, leftovers: Leftovers) -> None:
    """Delete exactly the names found, so a failed run does not leave them behind either."""
    with Connection(amqp_url, connect_timeout=5) as connection:
        channel = connection.channel()
        for queue in leftovers.queues:
            channel.queue_delete(queue)
        for exchange in leftovers.exchanges:
            channel.exchange_delete(exchange)
        channel.close()
    client = redis.Redis.from_url(redis_url)
    try:
        if leftovers.keys:
            client.unlink(*leftovers.keys)
    finally:
        client.close()
