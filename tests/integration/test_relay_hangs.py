"""A relay that accepts the connection and then stops answering, at MAIL, at DATA, in the
middle of the body: the send times out within MAILFLEET_SMTP_TIMEOUT, the job is retried as
transient, and the one sender thread goes on to the next job."""

from __future__ import annotations

import base64

import pytest
from kombu.connection import Connection

from mailfleet.producer.publisher import Producer
from mailfleet.shared.job import EmailJob
from mailfleet.shared.relays import Relay
from mailfleet.shared.settings import Settings
from tests.integration.helpers import WorkerThread, drain_dead_letters, make_job
from tests.integration.stalling_relay import Stage, StallingRelay

# Ports 2601-2620 are this suite's for relays that stall (clear of other test relays).
_PORTS = {Stage.MAIL: 2601, Stage.DATA: 2602, Stage.BODY: 2603}
# Larger than the client's send buffer (4 MiB at most on Linux) plus the relay's small
# receive window, so a relay that stops reading the body blocks the sender's write itself.
_BIG_ATTACHMENT = 5 * 1024 * 1024


def _job(number: int, *, big: bool) -> EmailJob:
    if not big:
        return make_job(number)
    payload = base64.b64encode(bytes(_BIG_ATTACHMENT)).decode()
    attachment = {"filename": "big.bin", "content_type": "application/octet-stream"}
    return make_job(number, attachments=[{**attachment, "content_base64": payload}])


@pytest.mark.parametrize("stage", [Stage.MAIL, Stage.DATA, Stage.BODY])
def test_a_relay_that_stops_answering_times_out_and_the_job_is_retried(
    stage: Stage, settings: Settings, producer: Producer, amqp_connection: Connection
) -> None:
    """The first connection stalls at ``stage``: the client hangs up, the job comes back
    through the first delay tier and is delivered, and the next job went out meanwhile."""
    # The body stall holds its tiny window shut for a while, so the write itself must time out.
    hold = 3.0 if stage is Stage.BODY else 0.0
    with StallingRelay(_PORTS[stage], stage, hold=hold) as relay:
        tuned = settings.model_copy(
            update={
                "smtp_relays": [Relay.parse(relay.url)],
                "smtp_timeout": 1.0,
                "concurrency": 1,
                "breaker_failures": 5,
            }
        )
        producer.publish(_job(1, big=stage is Stage.BODY))
        producer.publish(make_job(2))

        worker = WorkerThread(tuned, burst=True)
        assert 0 == worker.join(timeout=90)

        assert relay.wait_for_stalls(1, timeout=15)
        assert [stage] == [stall.stage for stall in relay.stalls]
        assert ["job-1", "job-2"] == sorted(relay.job_ids)
        registry = worker.worker.metrics.registry
        assert 1 == registry.get_sample_value("mailfleet_retries_total", {"tier": "300ms"})
        assert [] == drain_dead_letters(amqp_connection, tuned)
