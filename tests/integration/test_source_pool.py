"""A source-IP pool: relays with the same host and different ``?source=`` addresses, each
with its own weight, seen at the relay as the connections' peer addresses."""

from __future__ import annotations

from collections import Counter

from mailfleet.producer.devtools.sink import SmtpSink
from mailfleet.producer.publisher import Producer
from mailfleet.shared.relays import Relay
from mailfleet.shared.settings import Settings
from tests.integration.helpers import WorkerThread, make_job

JOBS = 400


class TestSourcePool:
    def test_peer_addresses_follow_the_weights(
        self, settings: Settings, producer: Producer, smtp_server: SmtpSink
    ) -> None:
        """Sources 127.0.0.2 (weight 3) and 127.0.0.3 (weight 1) to one relay: the relay sees
        about three mails from .2 for each from .3, and none from any other address."""
        pool = [
            Relay.parse(f"{smtp_server.url}?source=127.0.0.2&weight=3"),
            Relay.parse(f"{smtp_server.url}?source=127.0.0.3"),
        ]
        producer.publish_many(make_job(n) for n in range(JOBS))

        worker = WorkerThread(settings.model_copy(update={"smtp_relays": pool}), burst=True)
        assert 0 == worker.join(timeout=120)

        peers = Counter(message.peer for message in smtp_server.messages)
        assert {"127.0.0.2", "127.0.0.3"} == set(peers)
        assert JOBS == peers.total()
        assert 0.65 <= peers["127.0.0.2"] / JOBS <= 0.85

    def test_each_source_has_its_own_metrics(
        self, settings: Settings, producer: Producer, smtp_server: SmtpSink
    ) -> None:
        """Each source is a relay of its own: its breaker gauge is labelled with its source."""
        pool = [
            Relay.parse(f"{smtp_server.url}?source=127.0.0.2"),
            Relay.parse(f"{smtp_server.url}?source=127.0.0.3"),
        ]
        producer.publish_many(make_job(n) for n in range(20))

        worker = WorkerThread(settings.model_copy(update={"smtp_relays": pool}), burst=True)
        assert 0 == worker.join(timeout=60)

        registry = worker.worker.metrics.registry
        for relay in pool:
            assert 1.0 == registry.get_sample_value("mailfleet_relay_up", {"relay": relay.name})
        assert 20 == smtp_server.count
