"""A job that takes its worker down every time is dead-lettered `crashed` after the delivery
limit, instead of crashing the fleet forever."""

from __future__ import annotations

import os
import signal

from kombu.connection import Connection

from mailfleet.producer.connection import open_connection
from mailfleet.producer.devtools.sink import SmtpSink
from mailfleet.producer.publisher import Producer
from mailfleet.producer.topology import declare, delete, topology_of
from mailfleet.shared.settings import Settings
from tests.integration.helpers import WorkerProcess, drain_dead_letters, make_job, wait_until
from tests.integration.relays import ScriptedReplies


class TestCrashLimit:
    def test_a_job_that_kills_its_worker_is_dead_lettered_crashed(
        self,
        settings: Settings,
        smtp_server: SmtpSink,
        replies: ScriptedReplies,
        amqp_connection: Connection,
    ) -> None:
        """Each delivery of the job SIGKILLs the worker; after 2 redeliveries it is `crashed`."""
        # One message at a time, so no innocent job shares the prefetch of a killed worker.
        limited = settings.model_copy(update={"delivery_limit": 2, "prefetch": 1, "concurrency": 1})
        connection = open_connection(limited)
        delete(connection, topology_of(limited))
        declare(connection, topology_of(limited))
        connection.release()
        current: list[WorkerProcess] = []
        replies.on_rcpt(
            "doom@example.org", lambda: os.kill(current[-1].process.pid, signal.SIGKILL)
        )
        with Producer(limited) as producer:
            producer.publish(make_job(1, to=["doom@example.org"]))
            producer.publish(make_job(2))

        try:
            for _ in range(limited.delivery_limit):
                current.append(WorkerProcess(limited))
                assert wait_until(lambda: current[-1].process.poll() is not None, timeout=30)
            current.append(last := WorkerProcess(limited, "--burst"))
            assert 0 == last.wait(timeout=60), last.log()
        finally:
            for worker in current:
                worker.stop()

        [letter] = drain_dead_letters(amqp_connection, settings)
        assert ("job-1", "crashed") == (letter.job_id, letter.reason)
        assert "redelivered 2 times" in letter.error
        assert limited.delivery_limit == replies.seen["doom@example.org"]
        assert "job-2" in [message.job_id for message in smtp_server.messages]
