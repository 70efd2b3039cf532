"""A worker killed or stopped mid-run loses nothing: ledgers of confirmed vs accepted ids."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from mailfleet.producer.devtools.sink import SmtpSink
from mailfleet.producer.publisher import Producer
from mailfleet.shared.settings import Settings
from tests.integration.helpers import (
    DeliveryLedger,
    WorkerProcess,
    WorkerThread,
    make_job,
    wait_until,
)
from tests.integration.outages import TcpProxy

JOBS = 400


@pytest.fixture
def workers() -> Iterator[list[WorkerProcess]]:
    started: list[WorkerProcess] = []
    yield started
    for worker in started:
        worker.stop()


class TestWorkerCrash:
    def test_sigkill_mid_run_then_restart_delivers_every_job(
        self,
        settings: Settings,
        producer: Producer,
        smtp_server: SmtpSink,
        workers: list[WorkerProcess],
    ) -> None:
        """SIGKILL with messages in flight, restart: lost = confirmed - accepted is empty."""
        ledger = DeliveryLedger(
            confirmed=set(producer.publish_many(make_job(n) for n in range(JOBS)))
        )
        workers.append(first := WorkerProcess(settings))
        assert wait_until(lambda: smtp_server.count >= JOBS // 4, timeout=60), first.log()
        first.kill()
        at_kill = smtp_server.count
        assert at_kill < JOBS, "the worker finished before it could be killed"

        workers.append(second := WorkerProcess(settings, "--burst"))
        assert 0 == second.wait(timeout=120), second.log()

        ledger.record_relay(smtp_server)
        assert set() == ledger.lost
        # SMTP's own gap: a kill after the relay took the message but before its 250 reached
        # the worker (or before the sent mark) resends it. At most one per sender thread,
        # and every copy carries the same Message-ID, so receivers can fold them.
        assert len(ledger.duplicates) <= settings.concurrency, ledger.duplicates
        for job_id in ledger.duplicates:
            copies = {m.parsed()["Message-ID"] for m in smtp_server.messages if m.job_id == job_id}
            assert 1 == len(copies)


class TestGracefulShutdown:
    def test_sigterm_exits_zero_and_loses_nothing(
        self,
        settings: Settings,
        producer: Producer,
        smtp_server: SmtpSink,
        workers: list[WorkerProcess],
    ) -> None:
        """SIGTERM mid-run: exit 0 within the grace period, then a restart finishes the rest."""
        ledger = DeliveryLedger(
            confirmed=set(producer.publish_many(make_job(n) for n in range(JOBS)))
        )
        workers.append(first := WorkerProcess(settings))
        assert wait_until(lambda: smtp_server.count >= JOBS // 4, timeout=60), first.log()

        assert 0 == first.terminate(timeout=settings.shutdown_grace + 5), first.log()
        assert "worker_stopped" in first.log()
        assert smtp_server.count < JOBS

        workers.append(second := WorkerProcess(settings, "--burst"))
        assert 0 == second.wait(timeout=120), second.log()

        ledger.record_relay(smtp_server)
        assert set() == ledger.lost
        assert {} == ledger.duplicates


class TestBrokerOutage:
    def test_connections_cut_mid_run_lose_nothing_and_send_nothing_twice(
        self, settings: Settings, producer: Producer, smtp_server: SmtpSink
    ) -> None:
        """The broker vanishes mid-run (every connection cut, new ones refused) and comes
        back: the worker reconnects; redelivered jobs already accepted are skipped."""
        proxy = TcpProxy("127.0.0.1", 5672)
        upstream = settings.amqp_url.get_secret_value()
        proxied = settings.model_copy(
            update={"amqp_url": SecretStr(upstream.replace(":5672", f":{proxy.port}"))}
        )
        try:
            ledger = DeliveryLedger(
                confirmed=set(producer.publish_many(make_job(n) for n in range(JOBS)))
            )
            worker = WorkerThread(proxied)
            assert wait_until(lambda: smtp_server.count >= JOBS // 4, timeout=60)
            proxy.cut()
            assert wait_until(lambda: not worker.worker.ready, timeout=15)
            proxy.restore()
            assert wait_until(lambda: smtp_server.count >= JOBS, timeout=120)
            assert wait_until(lambda: worker.worker.ready, timeout=30)
            assert 0 == worker.stop()
        finally:
            proxy.close()

        ledger.record_relay(smtp_server)
        assert set() == ledger.lost
        assert {} == ledger.duplicates
