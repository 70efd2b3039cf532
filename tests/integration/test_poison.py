"""A message that is not a valid job is dead-lettered at once, and the worker carries on."""

from __future__ import annotations

import amqp
from kombu.connection import Connection

from mailfleet.producer.devtools.sink import SmtpSink
from mailfleet.producer.publisher import Producer
from mailfleet.shared.settings import Settings
from tests.integration.helpers import WorkerThread, drain_dead_letters, make_job, wait_until


def _publish_raw(connection: Connection, settings: Settings, body: bytes, message_id: str) -> None:
    channel = connection.channel()
    channel.basic_publish(
        amqp.Message(body, message_id=message_id, content_type="application/json", delivery_mode=2),
        exchange=settings.names.exchange,
        routing_key="transactional",
    )
    channel.close()


class TestPoisonMessages:
    def test_invalid_messages_are_dead_lettered_and_the_worker_keeps_going(
        self,
        settings: Settings,
        producer: Producer,
        smtp_server: SmtpSink,
        amqp_connection: Connection,
    ) -> None:
        """Junk bytes and a job without recipients go to the DLQ as `invalid`; good mail flows."""
        worker = WorkerThread(settings)
        _publish_raw(amqp_connection, settings, b"\x00not json at all", "junk")
        _publish_raw(amqp_connection, settings, b'{"from": "a@b.example", "text": "x"}', "no-rcpt")
        producer.publish(make_job(1))

        assert wait_until(lambda: smtp_server.count == 1, timeout=20)
        assert 0 == worker.stop()

        letters = {
            letter.job_id: letter for letter in drain_dead_letters(amqp_connection, settings)
        }
        assert {"junk", "no-rcpt"} == set(letters)
        assert {"invalid"} == {letter.reason for letter in letters.values()}
        assert "recipient" in letters["no-rcpt"].error
        assert "transactional" == letters["junk"].headers["x-mailfleet-lane"]
        assert b"\x00not json at all" == letters["junk"].body
