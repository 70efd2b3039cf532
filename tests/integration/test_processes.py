"""``mailfleet worker --processes N``: one parent, N worker processes, one metrics port.

Every test runs the real command as a subprocess against the real broker, Redis and the
in-process relay, and checks a ledger: which published ids the relay accepted, how often."""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from kombu.connection import Connection
from prometheus_client.parser import text_string_to_metric_families

from mailfleet.producer.devtools.sink import SmtpSink, free_port
from mailfleet.producer.publisher import Producer
from mailfleet.shared.job import Lane
from mailfleet.shared.settings import Settings
from mailfleet.worker.processes.supervisor import KILL_MARGIN
from tests.integration.helpers import DeliveryLedger, WorkerProcess, http_get, make_job, wait_until


@pytest.fixture
def groups() -> Iterator[list[WorkerProcess]]:
    started: list[WorkerProcess] = []
    yield started
    for group in started:
        group.stop()  # SIGKILL to the parent and its children


def _events(group: WorkerProcess, name: str) -> list[dict[str, Any]]:
    """The JSON log events called ``name`` (the parent's and the children's)."""
    found = []
    for line in group.log().splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("event") == name:
            found.append(event)
    return found


def _children(group: WorkerProcess) -> dict[int, int]:
    """Process index -> pid of the child started last in that slot."""
    return {e["process"]: e["pid"] for e in _events(group, "worker_process_started")}


def _samples(port: int, name: str) -> dict[str, float]:
    """The group's samples called ``name`` (only ``outcome="delivered"`` ones where there is
    an outcome), summed by their ``process`` label."""
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(http_get(port, "/metrics")[1]):
        for sample in family.samples:
            if sample.name == name and sample.labels.get("outcome", "delivered") == "delivered":
                process = sample.labels["process"]
                found[process] = found.get(process, 0.0) + sample.value
    return found


def _queued_ids(connection: Connection, settings: Settings) -> Counter[str]:
    """Take every message left in the lanes and delay tiers; count their ids."""
    queues = [settings.names.lane_queue(lane) for lane in Lane]
    queues += [settings.names.delay_queue(delay) for delay in settings.retry_delays]
    channel = connection.channel()
    found: Counter[str] = Counter()
    try:
        for queue in queues:
            while (message := channel.basic_get(queue)) is not None:
                found[str(message.properties.get("message_id", ""))] += 1
                channel.basic_ack(message.delivery_tag)
    finally:
        channel.close()
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


class TestProcessGroup:
    def test_two_processes_deliver_every_job_once_and_serve_one_endpoint(
        self,
        settings: Settings,
        producer: Producer,
        smtp_server: SmtpSink,
        groups: list[WorkerProcess],
    ) -> None:
        """Both children take work, each id reaches the relay once, and the parent's port
        has both children's samples (label ``process``) and their readiness."""
        jobs, port = 200, free_port()
        group = WorkerProcess(
            settings.model_copy(update={"metrics_port": port}), "--processes", "2"
        )
        groups.append(group)
        assert wait_until(lambda: http_get(port, "/readyz")[0] == 200, timeout=20), group.log()
        assert (200, "process 0 ok\nprocess 1 ok\n") == http_get(port, "/readyz")
        pids = _children(group)
        assert [0, 1] == sorted(pids)
        assert (200, f"process 0 ok (pid {pids[0]})\nprocess 1 ok (pid {pids[1]})\n") == http_get(
            port, "/healthz"
        )

        ledger = DeliveryLedger(
            confirmed=set(producer.publish_many(make_job(n) for n in range(jobs)))
        )
        assert wait_until(lambda: smtp_server.count >= jobs, timeout=60), group.log()
        ledger.record_relay(smtp_server)
        assert set() == ledger.lost
        assert {} == ledger.duplicates

        delivered = "mailfleet_jobs_total"
        assert wait_until(lambda: sum(_samples(port, delivered).values()) == jobs, timeout=10)
        by_process = _samples(port, delivered)
        assert {"0", "1"} == set(by_process), by_process
        assert all(count > 0 for count in by_process.values()), by_process
        assert {"0": 1.0, "1": 1.0} == _samples(port, "mailfleet_ready")
        metrics = http_get(port, "/metrics")[1]
        assert 1 == metrics.count("# TYPE mailfleet_jobs_total counter")  # one family, merged

        assert 0 == group.terminate(timeout=settings.shutdown_grace + KILL_MARGIN + 3), group.log()
        assert 2 == len(_events(group, "worker_stopped"))

    def test_sigterm_stops_every_child_within_the_grace_and_loses_nothing(
        self,
        settings: Settings,
        producer: Producer,
        smtp_server: SmtpSink,
        amqp_connection: Connection,
        groups: list[WorkerProcess],
    ) -> None:
        """SIGTERM mid-run: both children drain and exit, the parent exits 0 in time; every
        published id is at the relay or back in a queue, none in both, none twice."""
        jobs = 1000
        confirmed = set(producer.publish_many(make_job(n) for n in range(jobs)))
        group = WorkerProcess(settings, "--processes", "2")  # metrics_port 0: serves nothing
        groups.append(group)
        assert wait_until(lambda: smtp_server.count >= 100, timeout=60), group.log()
        pids = _children(group)
        assert 2 == len(pids)

        started = time.monotonic()
        assert 0 == group.terminate(timeout=settings.shutdown_grace + KILL_MARGIN + 3), group.log()
        assert time.monotonic() - started < settings.shutdown_grace
        assert 2 == len(_events(group, "worker_stopped")), group.log()
        assert not any(_alive(pid) for pid in pids.values())
        assert [] == _events(group, "health_server_started")
        assert smtp_server.count < jobs, "the group finished before it could be stopped"

        ledger = DeliveryLedger(confirmed=confirmed)
        ledger.record_relay(smtp_server)
        queued = _queued_ids(amqp_connection, settings)
        assert set() == confirmed - set(ledger.accepted) - set(queued)
        assert set() == set(ledger.accepted) & set(queued)
        assert {} == ledger.duplicates
        assert {} == {job_id: n for job_id, n in queued.items() if n > 1}

    def test_a_child_killed_with_sigkill_is_restarted_and_delivery_goes_on(
        self,
        settings: Settings,
        producer: Producer,
        smtp_server: SmtpSink,
        groups: list[WorkerProcess],
    ) -> None:
        """SIGKILL one child: the parent logs its death, starts a new one in its slot (new
        pid), which takes work; every id reaches the relay."""
        port = free_port()
        group = WorkerProcess(
            settings.model_copy(update={"metrics_port": port}), "--processes", "2"
        )
        groups.append(group)
        assert wait_until(lambda: http_get(port, "/readyz")[0] == 200, timeout=20), group.log()
        confirmed = set(producer.publish_many(make_job(n) for n in range(300)))
        assert wait_until(lambda: smtp_server.count >= 50, timeout=60), group.log()

        victim = _children(group)[0]
        os.kill(victim, signal.SIGKILL)
        # .get: a read of the shared log can catch a line half written; the next one won't.
        assert wait_until(lambda: _children(group).get(0, victim) != victim, timeout=10), (
            group.log()
        )
        [died] = _events(group, "worker_process_died")
        assert (0, victim, "SIGKILL") == (died["process"], died["pid"], died["signal"])
        assert wait_until(lambda: http_get(port, "/readyz")[0] == 200, timeout=20), group.log()

        confirmed |= set(producer.publish_many(make_job(n) for n in range(300, 400)))
        assert wait_until(lambda: len({m.job_id for m in smtp_server.messages}) >= 400, timeout=60)
        assert wait_until(lambda: _samples(port, "mailfleet_jobs_total").get("0", 0) > 0, 10)
        ledger = DeliveryLedger(confirmed=confirmed)
        ledger.record_relay(smtp_server)
        assert set() == ledger.lost
        # The SIGKILL gap of SMTP (see test_crash_and_shutdown): at most one per sender thread.
        assert len(ledger.duplicates) <= settings.concurrency, ledger.duplicates
        assert 0 == group.terminate(timeout=settings.shutdown_grace + KILL_MARGIN + 3), group.log()

    def test_burst_exits_once_every_child_has_drained_the_queues(
        self,
        settings: Settings,
        producer: Producer,
        smtp_server: SmtpSink,
        groups: list[WorkerProcess],
    ) -> None:
        """``--processes 2 --burst``: the children exit 0 when the queues are empty and are
        not restarted; then the parent exits 0."""
        confirmed = set(producer.publish_many(make_job(n) for n in range(100)))
        group = WorkerProcess(settings, "--processes", "2", "--burst")
        groups.append(group)
        assert 0 == group.wait(timeout=60), group.log()
        assert 2 == len(_events(group, "worker_process_finished")), group.log()
        assert 2 == len(_events(group, "worker_process_started"))
        ledger = DeliveryLedger(confirmed=confirmed)
        ledger.record_relay(smtp_server)
        assert set() == ledger.lost
        assert {} == ledger.duplicates
