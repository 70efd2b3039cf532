"""The end-of-run check of tests/namespaces.py finds what a run leaves on the broker and in
Redis, and a run that leaves something behind fails, naming it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from kombu.connection import Connection
from pydantic import SecretStr

from mailfleet.producer.connection import open_connection
from mailfleet.producer.topology import declare, topology_of
from mailfleet.shared.names import Names
from mailfleet.shared.settings import Settings
from tests import namespaces
from tests.namespaces import (
    RUN_ID,
    RUN_ID_VARIABLE,
    TEST_RETRY_DELAYS,
    find_leftovers,
    new_namespace,
    remove_leftovers,
    remove_namespace,
)
from tests.servers import LOCAL_AMQP

REPOSITORY = Path(__file__).resolve().parents[2]

# Its `late` fixture is set up before `namespace`, so torn down after it: it declares a lane
# and writes a key once the namespace is gone, as a worker still running would.
LEAKY_TEST = """
from collections.abc import Iterator

import pytest
import redis
from kombu.connection import Connection

from mailfleet.shared.names import Names


@pytest.fixture
def late(amqp_url: str, redis_server_url: str) -> Iterator[list[str]]:
    namespaces: list[str] = []
    yield namespaces
    with Connection(amqp_url) as connection:
        connection.channel().queue_declare(f"{namespaces[0]}.bulk", durable=True)
    client = redis.Redis.from_url(redis_server_url)
    client.set(Names(namespaces[0]).sent_ledger("job-1"), "x")
    client.close()


def test_leaves_its_namespace_behind(late: list[str], namespace: str) -> None:
    late.append(namespace)
"""


@pytest.fixture
def left_namespace(
    amqp_url: str, redis_server_url: str, redis_client: redis.Redis
) -> Iterator[str]:
    """A namespace of this run declared by hand (with a queue no topology has) and given a
    key, as if a test had left it; removed afterwards whatever the test did."""
    name = new_namespace("left_namespace")
    settings = Settings(
        amqp_url=SecretStr(amqp_url),
        redis_url=SecretStr(redis_server_url),
        namespace=name,
        retry_delays=TEST_RETRY_DELAYS,
    )
    connection = open_connection(settings)
    try:
        declare(connection, topology_of(settings))
        connection.channel().queue_declare(f"{name}.stray", durable=True, auto_delete=False)
    finally:
        connection.release()
    redis_client.set(Names(name).sent_ledger("job-1"), "x")
    yield name
    remove_namespace(amqp_url, redis_server_url, name)
    with Connection(amqp_url) as connection:
        connection.channel().queue_delete(f"{name}.stray")


def _known_queues(ns: str) -> tuple[str, ...]:
    return tuple(
        f"{ns}.{name}" for name in ("bulk", "dead", "delay.300ms", "delay.600ms", "transactional")
    )


class TestFindLeftovers:
    def test_every_queue_exchange_and_key_left_is_found_and_removed(
        self, amqp_url: str, redis_server_url: str, left_namespace: str
    ) -> None:
        """All of a namespace left behind is reported (a rabbitmqctl listing also sees names
        no topology has), and removing what was reported leaves nothing."""
        ns = left_namespace

        leftovers = find_leftovers(amqp_url, redis_server_url, ns, [ns])

        listed = "rabbitmqctl" == leftovers.broker_listed_by
        if amqp_url == LOCAL_AMQP and shutil.which("rabbitmqctl"):
            assert listed, "rabbitmqctl is here but did not list the local broker"
        stray = (f"{ns}.stray",) if listed else ()
        assert tuple(sorted(_known_queues(ns) + stray)) == leftovers.queues
        assert (ns, f"{ns}.delay", f"{ns}.dlx", f"{ns}.events") == leftovers.exchanges
        assert (Names(ns).sent_ledger("job-1"),) == leftovers.keys
        assert f"queue {ns}.bulk  (from left_namespace)" in leftovers.report()

        remove_leftovers(amqp_url, redis_server_url, leftovers)

        assert not find_leftovers(amqp_url, redis_server_url, ns, [ns])

    def test_without_rabbitmqctl_the_known_names_are_declared_passively(
        self,
        amqp_url: str,
        redis_server_url: str,
        left_namespace: str,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """For a broker rabbitmqctl cannot list, each name a test namespace can have is
        checked by a passive declare: all are found but the stray queue."""
        monkeypatch.setattr(namespaces, "_rabbitmqctl_lists", lambda *_: None)
        ns = left_namespace

        leftovers = find_leftovers(amqp_url, redis_server_url, ns, [ns])

        assert "passive declares" == leftovers.broker_listed_by
        assert _known_queues(ns) == leftovers.queues
        assert (ns, f"{ns}.delay", f"{ns}.dlx", f"{ns}.events") == leftovers.exchanges
        assert (Names(ns).sent_ledger("job-1"),) == leftovers.keys


class TestARunThatLeavesANamespace:
    def test_fails_and_names_what_it_left(
        self, amqp_url: str, redis_server_url: str, tmp_path: Path
    ) -> None:
        """A pytest run with these fixtures whose only test passes, but whose namespace is
        declared again after its teardown, exits 1, names the queue and the key with the
        test, and removes them. Its run id extends ours, so our own check covers it too."""
        (tmp_path / "pytest.ini").write_text("[pytest]\n")
        (tmp_path / "test_leaky.py").write_text(LEAKY_TEST)
        inner_prefix = f"test-{RUN_ID}-leak-"
        env = {
            **os.environ,
            RUN_ID_VARIABLE: f"{RUN_ID}-leak",
            "MAILFLEET_TEST_AMQP_URL": amqp_url,
            "MAILFLEET_TEST_REDIS_URL": redis_server_url,
        }
        command = [sys.executable, "-m", "pytest", "-p", "tests.integration.conftest"]
        command += ["-p", "no:cacheprovider", str(tmp_path)]

        result = subprocess.run(
            command,
            cwd=REPOSITORY,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

        assert 1 == result.returncode, result.stdout + result.stderr
        assert "1 passed" in result.stdout
        owner = "test_leaky.py::test_leaves_its_namespace_behind"
        found = re.search(
            rf"queue ({re.escape(inner_prefix)}[0-9a-f]{{10}})\.bulk  \(from {owner}\)",
            result.stdout,
        )
        assert found is not None, result.stdout
        assert f"Redis key {Names(found[1]).sent_ledger('job-1')}  (from {owner})" in result.stdout
        assert not find_leftovers(amqp_url, redis_server_url, inner_prefix, [found[1]])
