"""The Producer returns only after broker confirms, survives a dropped connection, and
raises our own errors for what the broker refuses."""

from __future__ import annotations

import socket

import pytest
from kombu.connection import Connection
from pydantic import SecretStr

from mailfleet.producer.connection import open_connection
from mailfleet.producer.publisher import Producer
from mailfleet.producer.topology import declare, queue_depths, topology_of
from mailfleet.shared.errors import BrokerError, Unroutable
from mailfleet.shared.settings import Settings
from tests.integration.helpers import make_job


def _depths(connection: Connection, settings: Settings) -> dict[str, int]:
    return {
        name: ready for name, (ready, _) in queue_depths(connection, topology_of(settings)).items()
    }


class TestProducer:
    def test_publish_many_confirms_every_job_into_its_lane(
        self, settings: Settings, producer: Producer, amqp_connection: Connection
    ) -> None:
        """Ids come back in order; each lane queue holds its jobs once confirmed."""
        jobs = [make_job(n, lane="bulk" if n < 30 else "transactional") for n in range(100)]

        ids = producer.publish_many(jobs)

        assert [job.id for job in jobs] == ids
        depths = _depths(amqp_connection, settings)
        assert 30 == depths[f"{settings.namespace}.bulk"]
        assert 70 == depths[f"{settings.namespace}.transactional"]

    def test_a_dropped_connection_is_remade_and_the_publish_retried(
        self, settings: Settings, producer: Producer, amqp_connection: Connection
    ) -> None:
        """The socket dies under the producer; the next publish still lands, exactly once."""
        producer.publish(make_job(1))
        live = producer._connection
        assert live is not None
        live.connection.sock.shutdown(socket.SHUT_RDWR)

        producer.publish(make_job(2))

        assert 2 == _depths(amqp_connection, settings)[f"{settings.namespace}.transactional"]

    def test_an_unroutable_job_raises_naming_it(
        self, settings: Settings, producer: Producer, amqp_connection: Connection
    ) -> None:
        """With the bulk lane's queue gone, a bulk job is an error to the caller, not lost."""
        channel = amqp_connection.channel()
        channel.queue_delete(f"{settings.namespace}.bulk")
        channel.close()

        with pytest.raises(Unroutable) as raised:
            producer.publish_many([make_job(1), make_job(2, lane="bulk")])

        assert ["job-2"] == raised.value.message_ids


class TestBrokerRefusals:
    """What RabbitMQ refuses reaches the caller as a BrokerError, never as a py-amqp error."""

    def test_a_wrong_password_names_the_url_setting(self, settings: Settings) -> None:
        url = settings.amqp_url.get_secret_value()
        user, _, rest = url.partition("://")[2].partition("@")
        wrong_url = SecretStr(f"amqp://{user.split(':')[0]}:no@{rest}")
        wrong = settings.model_copy(update={"amqp_url": wrong_url})

        with pytest.raises(BrokerError, match="MAILFLEET_AMQP_URL") as raised:
            open_connection(wrong, retries=0)
        assert "ACCESS_REFUSED" in str(raised.value)

    def test_a_queue_declared_with_other_arguments(
        self, settings: Settings, amqp_connection: Connection
    ) -> None:
        """Declaring over a lane queue that has another delivery limit advises what to do."""
        declare(amqp_connection, topology_of(settings))
        other = settings.model_copy(update={"delivery_limit": settings.delivery_limit + 1})

        with pytest.raises(BrokerError, match="exists with other arguments"):
            declare(amqp_connection, topology_of(other))

    def test_depths_of_an_undeclared_namespace(
        self, settings: Settings, amqp_connection: Connection
    ) -> None:
        missing = settings.model_copy(update={"namespace": f"{settings.namespace}-none"})

        with pytest.raises(BrokerError, match="does not exist"):
            queue_depths(amqp_connection, topology_of(missing))
