"""The fleet on a Redis Cluster of three primaries (``redis+cluster://``): the rate-limit
accuracy tests, the adaptive limits, the sent ledger and the suppression list, each run as
they run on one Redis, and every key of a namespace in one hash slot."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from pydantic import SecretStr

import tests.integration.test_adaptive_limits as adaptive_limits
import tests.integration.test_rate_limit as rate_limit
from mailfleet.producer.devtools.sink import SmtpSink
from mailfleet.producer.publisher import Producer
from mailfleet.shared.redis_client import make_redis
from mailfleet.shared.settings import Settings
from mailfleet.shared.suppression import SuppressionList
from mailfleet.worker.limits.buckets import RateLimiter
from tests.integration.helpers import DeliveryLedger, WorkerThread, make_job
from tests.integration.redis_topologies import ClusterOfThree

PORTS = (6401, 6402, 6403)


@pytest.fixture(scope="module")
def redis_cluster() -> Iterator[ClusterOfThree]:
    cluster = ClusterOfThree(PORTS)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def settings(settings: Settings, redis_cluster: ClusterOfThree) -> Iterator[Settings]:
    """The test's settings with MAILFLEET_REDIS_URL pointing at the cluster; the namespace's
    keys there are removed afterwards (through the cluster client, as the tools do)."""
    on_cluster = settings.model_copy(update={"redis_url": SecretStr(redis_cluster.url)})
    yield on_cluster
    client = make_redis(on_cluster)
    try:
        if keys := keys_of(client, on_cluster):
            client.unlink(*keys)
    finally:
        client.close()


@pytest.fixture
def redis_client(settings: Settings) -> Iterator[redis.Redis]:
    client = make_redis(settings)
    yield client
    client.close()


@pytest.fixture
def limiter(settings: Settings, redis_client: redis.Redis) -> RateLimiter:
    return RateLimiter(redis_client, settings)


def keys_of(client: redis.Redis, settings: Settings) -> list[bytes]:
    return list(client.scan_iter(match=f"{settings.names.redis_prefix}*", count=1000))


class TestBucketScriptOnCluster(rate_limit.TestBucketScript):
    """The bucket script's accuracy tests, against the cluster."""


class TestFleetLimitOnCluster(rate_limit.TestFleetLimit):
    """Three worker processes hold the limit at the relay, with the buckets on the cluster."""


class TestTransactionalReserveOnCluster(rate_limit.TestTransactionalReserve):
    """Bulk leaves half the burst to transactional mail, on the cluster."""


class TestAdaptiveLimitsOnCluster(adaptive_limits.TestAdaptiveLimits):
    """A throttling domain slows down alone and recovers, with its factors on the cluster."""


class TestLedgerAndSuppressionOnCluster:
    def test_a_run_skips_suppressed_and_already_sent_recipients(
        self,
        settings: Settings,
        producer: Producer,
        smtp_server: SmtpSink,
        redis_client: redis.Redis,
    ) -> None:
        """A suppressed address and a recipient the sent ledger holds are not mailed; the rest
        is, each recipient once; the ledger and counter are written; one slot holds it all."""
        SuppressionList(redis_client, settings.names).add("blocked@example.org", "test")
        redis_client.hset(settings.names.sent_ledger("job-1"), "a1@example.org", "1")
        jobs = [make_job(n, to=[f"a{n}@example.org", "blocked@example.org"]) for n in range(30)]
        ledger = DeliveryLedger(confirmed=set(producer.publish_many(jobs)))

        worker = WorkerThread(settings, burst=True)
        assert 0 == worker.join(60)

        ledger.record_relay(smtp_server)
        recipients = sorted(rcpt for m in smtp_server.messages for rcpt in m.rcpt_tos)
        assert sorted(f"a{n}@example.org" for n in range(30) if n != 1) == recipients
        assert {} == ledger.duplicates
        assert 29 == int(redis_client.get(settings.names.delivered_counter) or 0)
        assert redis_client.hexists(settings.names.sent_ledger("job-7"), "a7@example.org")
        slots = {redis_client.keyslot(key) for key in keys_of(redis_client, settings)}
        assert 1 == len(slots)
