"""The fleet behind Redis Sentinel (``redis+sentinel://``), with the primary killed mid-run:
the workers hold their mail while there is no primary, follow the failover to the replica
and finish the run; nothing is lost, and the relay never sees a 1-s window above
2 x (rate + burst) (a failover may lose the bucket's last moments, never more)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import structlog
from pydantic import SecretStr

from mailfleet.producer.devtools.sink import SmtpSink
from mailfleet.producer.publisher import Producer
from mailfleet.shared.durations import Rate
from mailfleet.shared.settings import Settings
from tests.integration.helpers import DeliveryLedger, WorkerThread, make_job, wait_until
from tests.integration.redis_topologies import SentinelGroup
from tests.integration.test_rate_limit import _max_in_any_second

RATE, BURST, JOBS = 50, 5, 400


@pytest.fixture
def sentinel_group() -> Iterator[SentinelGroup]:
    group = SentinelGroup(6411, 6412, (26411, 26412, 26413))
    try:
        group.start()
        yield group
    finally:
        group.stop()


class TestSentinelFailover:
    def test_a_killed_primary_is_followed_and_nothing_is_lost(
        self,
        settings: Settings,
        producer: Producer,
        smtp_server: SmtpSink,
        sentinel_group: SentinelGroup,
    ) -> None:
        """Two workers at 50/s, burst 5; the primary is SIGKILLed after 80 sends: the workers
        log Redis unavailable, resume on the promoted replica, every job arrives, and no
        1-s window holds more than 2 x (50 + 5)."""
        limited = settings.model_copy(
            update={
                "redis_url": SecretStr(sentinel_group.url),
                "rate_limit": Rate.parse(f"{RATE}/s"),
                "rate_burst": BURST,
            }
        )
        ledger = DeliveryLedger(
            confirmed=set(producer.publish_many(make_job(n) for n in range(JOBS)))
        )
        with structlog.testing.capture_logs() as logs:
            workers = [WorkerThread(limited) for _ in range(2)]
            assert wait_until(lambda: smtp_server.count >= 80, timeout=30)

            sentinel_group.kill_primary()
            assert wait_until(lambda: sentinel_group.primary_port() == 6412, timeout=30)
            assert wait_until(lambda: smtp_server.count >= JOBS, timeout=90), smtp_server.count
            for worker in workers:
                assert 0 == worker.stop()

        events = [entry["event"] for entry in logs]
        assert "redis_unavailable" in events
        assert "redis_recovered" in events[events.index("redis_unavailable") :]
        ledger.record_relay(smtp_server)
        arrivals = [message.received_at for message in smtp_server.messages]
        print(
            f"sentinel kill: published {JOBS}, confirmed {len(ledger.confirmed)}, "
            f"accepted {sum(ledger.accepted.values())}, dead {len(ledger.dead)}, "
            f"lost {len(ledger.lost)}, duplicates {len(ledger.duplicates)}, "
            f"busiest 1-s window {_max_in_any_second(arrivals)} "
            f"(limit 2 x (rate + burst) = {2 * (RATE + BURST)})"
        )
        assert set() == ledger.lost
        assert _max_in_any_second(arrivals) <= 2 * (RATE + BURST)
