"""The process group's endpoint without processes: merging the children's metrics, and what
/readyz and /healthz say about children that are not running or not started."""

from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from mailfleet.worker.metrics import WorkerMetrics
from mailfleet.worker.processes.group_health import Member, liveness, readiness
from mailfleet.worker.processes.group_metrics import merge


def _exposition(delivered: int) -> str:
    metrics = WorkerMetrics()
    metrics.watch(lambda: 0, lambda: True, lambda: True, lambda: True)
    metrics.watch_relays(lambda: {"relay-a": "closed"})
    metrics.watch_domains(lambda: {"example.org": 1.0})
    for _ in range(delivered):
        metrics.job("delivered", "transactional")
    metrics.send_seconds.observe(0.2)
    return generate_latest(metrics.registry).decode()


class TestMerge:
    def test_every_sample_gets_its_process_and_every_family_appears_once(self) -> None:
        text = merge({0: _exposition(3), 1: _exposition(5)}).decode()
        families = list(text_string_to_metric_families(text))
        names = [family.name for family in families]
        assert len(names) == len(set(names))
        assert 1 == text.count("# TYPE mailfleet_jobs_total counter")
        samples = [sample for family in families for sample in family.samples]
        assert all(sample.labels["process"] in {"0", "1"} for sample in samples)
        delivered = {
            sample.labels["process"]: sample.value
            for sample in samples
            if sample.name == "mailfleet_jobs_total"
        }
        assert {"0": 3.0, "1": 5.0} == delivered
        relays = {s.labels["process"] for s in samples if s.name == "mailfleet_relay_up"}
        assert {"0", "1"} == relays
        buckets = [s for s in samples if s.name == "mailfleet_send_seconds_bucket"]
        assert 2 * 13 == len(buckets)  # 12 bounds and +Inf, per process

    def test_a_child_text_that_does_not_parse_is_left_out(self) -> None:
        text = merge({0: _exposition(1), 1: "mailfleet_jobs_total{lane= 1\n"}).decode()
        processes = {
            sample.labels["process"]
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }
        assert {"0"} == processes

    def test_no_children_no_samples(self) -> None:
        assert b"" == merge({})


class TestProbes:
    def test_children_not_running_or_starting_are_not_ready(self) -> None:
        members = [Member(0, None, 0), Member(1, 4242, 0)]
        assert (False, "process 0 FAIL (not running)\nprocess 1 FAIL (starting)\n") == readiness(
            members
        )

    def test_liveness_needs_every_child_alive_and_counts_finished_ones_as_alive(self) -> None:
        assert (True, "process 0 ok (pid 7)\nprocess 1 finished\n") == liveness(
            [Member(0, 7, 1234), Member(1, None, 0, finished=True)]
        )
        assert (False, "process 0 FAIL (not running)\n") == liveness([Member(0, None, 0)])
