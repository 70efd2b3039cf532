"""The fleet on a three-node RabbitMQ cluster (MAILFLEET_AMQP_URL lists every node): the
node that leads the transactional queue is SIGKILLed mid-run and brought back. The producer
keeps publishing through the kill and every publish it returned from is confirmed; workers
fail over to the other nodes; the relay receives every job, and a job sent twice (its ack
lost with the node) is the same email, sharing its Message-ID."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest
from pydantic import SecretStr

from mailfleet.producer.devtools.sink import SmtpSink
from mailfleet.producer.publisher import Producer
from mailfleet.shared.errors import BrokerUnavailable
from mailfleet.shared.job import Lane
from mailfleet.shared.settings import Settings
from tests.integration.helpers import DeliveryLedger, WorkerProcess, make_job, wait_until
from tests.integration.rabbitmq_cluster import RabbitCluster

JOBS, CHUNK, WORKERS, PREFETCH = 5000, 250, 2, 50
AHEAD = 500
# Sent twice at most: what the killed node's producer had unconfirmed (one chunk, published
# again elsewhere), and per worker what it had unacked when its connection died (a prefetch,
# sent by the worker and redelivered) and what its new connection was given of those (a
# second prefetch) before the sent ledger had the first copies.
BOUND = CHUNK + 2 * WORKERS * PREFETCH


@pytest.fixture
def rabbit_cluster() -> Iterator[RabbitCluster]:
    cluster = RabbitCluster((5731, 5732, 5733), (25731, 25732, 25733))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


class CountingProducer(Producer):
    """A Producer that counts its reconnects (each lost connection it published again after)."""

    reconnects = 0

    def _recover(
        self, exc: BrokerUnavailable, attempt: int, unconfirmed: int, deadline: float
    ) -> None:
        self.reconnects += 1
        super()._recover(exc, attempt, unconfirmed, deadline)


class Publishing(threading.Thread):
    """Publishes jobs ``numbers`` in chunks through one Producer; ``confirmed`` grows with
    each ``publish_many`` that returned."""

    def __init__(self, settings: Settings, numbers: range, pace: Callable[[], bool]) -> None:
        super().__init__(name="test-publisher", daemon=True)
        self.settings = settings
        self.numbers = numbers
        self.pace = pace
        self.reconnects = 0
        self.confirmed: list[str] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with CountingProducer(self.settings, reconnect_attempts=10) as producer:
                for start in range(0, len(self.numbers), CHUNK):
                    if not wait_until(self.pace, timeout=120):
                        raise AssertionError("the relay stopped receiving")
                    jobs = [make_job(n) for n in self.numbers[start : start + CHUNK]]
                    self.confirmed += producer.publish_many(jobs)
                    self.reconnects = producer.reconnects
        except BaseException as exc:  # surfaced by the test
            self.error = exc


def with_first_node(settings: Settings, cluster: RabbitCluster, rotation: int) -> Settings:
    """The cluster's URLs rotated by ``rotation``: a process shuffles every list the same
    way (by its pid), so the three rotations start on three different nodes, and one of
    the three producers is on the node that is killed."""
    urls = [node.url for node in cluster.nodes]
    rotated = ",".join(urls[rotation:] + urls[:rotation])
    return settings.model_copy(update={"amqp_url": SecretStr(rotated)})


class TestClusterFailover:
    # Three nodes starting (about 20 s, longer on a loaded machine) count against the limit.
    @pytest.mark.timeout(300)
    def test_killing_the_transactional_leader_loses_nothing(
        self, settings: Settings, smtp_server: SmtpSink, rabbit_cluster: RabbitCluster
    ) -> None:
        """5 000 jobs from three producers (one on each node); the transactional queue's
        leader is SIGKILLed after 1 500 arrived and restarted after 2 500: lost = 0, the
        killed node's producer published again, every duplicate shares its Message-ID, and
        there are no more than one chunk unconfirmed plus the workers' prefetch."""
        clustered = settings.model_copy(
            update={
                "amqp_url": SecretStr(rabbit_cluster.url),
                "quorum_size": 3,
                "prefetch": PREFETCH,
            }
        )
        queue = clustered.names.lane_queue(Lane.TRANSACTIONAL)
        with Producer(clustered):  # declares the topology on the cluster
            pass
        assert [node.name for node in rabbit_cluster.nodes] == rabbit_cluster.members_of(queue)
        workers = [WorkerProcess(clustered) for _ in range(WORKERS)]
        publishers: list[Publishing] = []

        def pace() -> bool:
            """Publish at the relay's speed (at most AHEAD jobs ahead of it), so that the
            producers are still publishing when the node dies."""
            published = sum(len(publishing.confirmed) for publishing in publishers)
            return published - smtp_server.count < AHEAD

        publishers += [
            Publishing(with_first_node(clustered, rabbit_cluster, i), range(i, JOBS, 3), pace)
            for i in range(3)
        ]
        try:
            for worker in workers:
                assert wait_until(lambda w=worker: "worker_started" in w.log(), 60), worker.log()
            # Asked before the run: rabbitmqctl takes seconds on a loaded machine, and the
            # kill must come while the producers are still publishing.
            leader = rabbit_cluster.node(rabbit_cluster.leader_of(queue))
            for publishing in publishers:
                publishing.start()
            assert wait_until(lambda: smtp_server.count >= 1500, timeout=120)
            leader.kill()
            assert wait_until(lambda: smtp_server.count >= 2500, timeout=120), smtp_server.count
            leader.start()

            for publishing in publishers:
                publishing.join(timeout=240)
                assert publishing.error is None, repr(publishing.error)
                assert not publishing.is_alive()
            assert wait_until(lambda: smtp_server.count >= JOBS, timeout=240), smtp_server.count
            everything = {f"job-{n}" for n in range(JOBS)}
            assert wait_until(
                lambda: everything <= {m.job_id for m in smtp_server.messages}, 120, interval=1.0
            )
            failed_over = sum("broker_reconnected" in worker.log() for worker in workers)
            for worker in workers:
                assert 0 == worker.terminate(timeout=60), worker.log()
        finally:
            for worker in workers:
                worker.stop()

        confirmed = [job_id for publishing in publishers for job_id in publishing.confirmed]
        ledger = DeliveryLedger(confirmed=set(confirmed))
        retries = sum(publishing.reconnects for publishing in publishers)
        ledger.record_relay(smtp_server)
        message_ids: dict[str, set[str]] = {}
        for message in smtp_server.messages:
            message_ids.setdefault(str(message.job_id), set()).add(
                str(message.parsed()["Message-ID"])
            )
        busiest = max(len(ids) for ids in message_ids.values())
        print(
            f"rabbitmq cluster kill ({leader.name}): published {JOBS}, "
            f"confirmed {len(ledger.confirmed)}, accepted {sum(ledger.accepted.values())}, "
            f"dead {len(ledger.dead)}, lost {len(ledger.lost)}, "
            f"duplicates {sum(n - 1 for n in ledger.duplicates.values())} "
            f"(bound {BOUND}), Message-IDs per job at most {busiest}; "
            f"workers that failed over {failed_over} of {WORKERS}, "
            f"producer reconnects {retries}, producers' first nodes "
            f"{[p.settings.amqp_urls[0].split('@')[1] for p in publishers]}"
        )
        assert JOBS == len(ledger.confirmed)
        assert retries >= 1  # the producer on the killed node published again elsewhere
        assert set() == ledger.lost
        assert sum(n - 1 for n in ledger.duplicates.values()) <= BOUND
        assert 1 == busiest
