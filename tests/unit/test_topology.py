"""The broker topology as data (the README's "Broker topology")."""

from __future__ import annotations

import pytest

from mailfleet.shared.names import TIER, Names
from mailfleet.shared.topology import (
    GROUP_SIZE,
    BindingSpec,
    ExchangeSpec,
    QueueSpec,
    Topology,
    build_topology,
    group_size_differs,
)

NAMESPACE = "t-ns"


@pytest.fixture
def topology() -> Topology:
    """The topology of namespace ``t-ns`` with three delay tiers and a delivery limit of 20."""
    return build_topology(Names(NAMESPACE), [5.0, 30.0, 120.0], delivery_limit=20)


def queue(topology: Topology, name: str) -> QueueSpec:
    (found,) = [spec for spec in topology.queues if spec.name == name]
    return found


class TestBuildTopology:
    """``build_topology``."""

    def test_exchanges(self, topology: Topology) -> None:
        """A topic exchange for publishing, a headers exchange for delays, a fanout DLX."""
        expected = (
            ExchangeSpec("t-ns", "topic"),
            ExchangeSpec("t-ns.delay", "headers"),
            ExchangeSpec("t-ns.dlx", "fanout"),
            ExchangeSpec("t-ns.events", "topic"),
        )
        assert expected == topology.exchanges

    def test_queue_names(self, topology: Topology) -> None:
        """Lane queues, one delay queue per tier and the dead queue, all under the namespace."""
        expected = [
            "t-ns.transactional",
            "t-ns.bulk",
            "t-ns.delay.5s",
            "t-ns.delay.30s",
            "t-ns.delay.2m",
            "t-ns.dead",
        ]
        assert expected == [spec.name for spec in topology.queues]

    def test_every_name_under_namespace(self) -> None:
        """Two namespaces share no exchange or queue name."""
        one = build_topology(Names("one"), [5.0], 20)
        two = build_topology(Names("two"), [5.0], 20)
        names_one = {spec.name for spec in (*one.exchanges, *one.queues)}
        names_two = {spec.name for spec in (*two.exchanges, *two.queues)}
        assert (set(), True) == (
            names_one & names_two,
            all(name == "one" or name.startswith("one.") for name in names_one),
        )

    @pytest.mark.parametrize(
        ("name", "lane"), [("t-ns.transactional", "transactional"), ("t-ns.bulk", "bulk")]
    )
    def test_lane_queue(self, topology: Topology, name: str, lane: str) -> None:
        """A lane queue is quorum, delivery-limited, dead-letters at least once, bound by lane."""
        expected = QueueSpec(
            name,
            {
                "x-queue-type": "quorum",
                "x-delivery-limit": 20,
                "x-dead-letter-exchange": "t-ns.dlx",
                "x-dead-letter-strategy": "at-least-once",
                "x-overflow": "reject-publish",
            },
            (BindingSpec("t-ns", lane),),
        )
        assert expected == queue(topology, name)

    def test_delivery_limit_configurable(self) -> None:
        """The delivery limit is the one given."""
        topology = build_topology(Names(NAMESPACE), [5.0], delivery_limit=7)
        assert 7 == queue(topology, "t-ns.bulk").arguments["x-delivery-limit"]

    @pytest.mark.parametrize(
        ("name", "ttl_ms", "tier"),
        [
            ("t-ns.delay.5s", 5000, "5s"),
            ("t-ns.delay.30s", 30000, "30s"),
            ("t-ns.delay.2m", 120000, "2m"),
        ],
    )
    def test_delay_queue(self, topology: Topology, name: str, ttl_ms: int, tier: str) -> None:
        """A delay queue holds its tier's TTL and dead-letters back to the main exchange."""
        expected = QueueSpec(
            name,
            {
                "x-queue-type": "quorum",
                "x-message-ttl": ttl_ms,
                "x-dead-letter-exchange": "t-ns",
                "x-dead-letter-strategy": "at-least-once",
                "x-overflow": "reject-publish",
            },
            # x- headers only count for matching with "all-with-x" (RabbitMQ 3.10+).
            (BindingSpec("t-ns.delay", "", {"x-match": "all-with-x", TIER: tier}),),
        )
        assert expected == queue(topology, name)

    def test_one_delay_queue_per_tier(self) -> None:
        """Repeated or unsorted delays give one queue per distinct tier, shortest first."""
        topology = build_topology(Names(NAMESPACE), [600.0, 5.0, 5.0, 0.5, 3600.0], 20)
        delays = [spec.name for spec in topology.queues if spec.name.startswith("t-ns.delay.")]
        assert ["t-ns.delay.500ms", "t-ns.delay.5s", "t-ns.delay.10m", "t-ns.delay.1h"] == delays

    def test_dead_queue(self, topology: Topology) -> None:
        """The dead queue is quorum, without TTL or limit, bound to the DLX."""
        expected = QueueSpec("t-ns.dead", {"x-queue-type": "quorum"}, (BindingSpec("t-ns.dlx"),))
        assert expected == queue(topology, "t-ns.dead")

    def test_every_queue_quorum(self, topology: Topology) -> None:
        """Every queue is a quorum queue."""
        assert {"quorum"} == {spec.arguments["x-queue-type"] for spec in topology.queues}

    def test_idempotent(self) -> None:
        """Building twice gives the same topology."""
        assert build_topology(Names("a"), [5.0, 30.0], 20) == build_topology(
            Names("a"), [5.0, 30.0], 20
        )


class TestQuorumSize:
    """``build_topology(..., quorum_size)`` and the declare's view of a size mismatch."""

    def test_every_queue_gets_the_initial_group_size(self) -> None:
        """Lanes, delay tiers and the dead queue are created with that many replicas."""
        topology = build_topology(Names(NAMESPACE), [5.0], 20, quorum_size=3)
        assert {3} == {queue.arguments[GROUP_SIZE] for queue in topology.queues}
        assert 4 == len(topology.queues)

    def test_without_a_size_rabbitmq_chooses(self) -> None:
        """None leaves the argument out (RabbitMQ's own default)."""
        topology = build_topology(Names(NAMESPACE), [5.0], 20)
        assert all(GROUP_SIZE not in queue.arguments for queue in topology.queues)

    def test_only_a_group_size_mismatch_is_forgiven(self) -> None:
        """A queue created with another size is used as it is; other mismatches are not."""
        size = (
            "PRECONDITION_FAILED - inequivalent arg 'x-quorum-initial-group-size' for queue "
            "'q' in vhost '/': received the value '3' of type 'signedint' but current is none"
        )
        limit = "PRECONDITION_FAILED - inequivalent arg 'x-delivery-limit' for queue 'q'"
        assert group_size_differs(size)
        assert not group_size_differs(limit)
