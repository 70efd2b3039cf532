"""A worker killed or stopped mid-run loses nothing: ledgers of confirmed vs accepted ids."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mailfleet.producer.publisher import Producer
from mailfleet.producer.sink import SmtpSink
from mailfleet.shared.settings import Settings
from tests.integration.helpers import DeliveryLedger, WorkerProcess, make_job, wait_until

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
        # The only window for a duplicate is a kill between the relay's 250 and the sent mark,
        # at most one per sender thread; report it rather than hide it.
        assert len(ledger.duplicates) <= settings.concurrency, ledger.duplicates


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
