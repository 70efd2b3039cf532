"""Delivery like an MTA: relays by weight, failover around a dead relay, and STARTTLS with
AUTH against a relay with a certificate from a test CA."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiosmtpd.smtp import AuthResult, LoginPassword
from kombu.connection import Connection
from pydantic import SecretStr

from mailfleet.producer.devtools.sink import SmtpSink, free_port
from mailfleet.producer.publisher import Producer
from mailfleet.shared.relays import Relay
from mailfleet.shared.settings import Settings
from tests.integration.helpers import (
    WorkerProcess,
    WorkerThread,
    drain_dead_letters,
    make_job,
    wait_until,
)

USER, PASSWORD = "mailer", "s3cret-Pa55"


@pytest.fixture
def second_relay() -> Iterator[SmtpSink]:
    with SmtpSink() as sink:
        yield sink


class TestWeights:
    def test_jobs_are_spread_by_weight(
        self,
        settings: Settings,
        producer: Producer,
        smtp_server: SmtpSink,
        second_relay: SmtpSink,
    ) -> None:
        """Weights 3:1 over 1000 jobs: the first relay gets 75 % within a few per cent."""
        relays = [Relay.parse(f"{smtp_server.url}?weight=3"), Relay.parse(second_relay.url)]
        producer.publish_many(make_job(n) for n in range(1000))

        worker = WorkerThread(settings.model_copy(update={"smtp_relays": relays}), burst=True)
        assert 0 == worker.join(timeout=120)

        assert 1000 == smtp_server.count + second_relay.count
        assert 0.70 <= smtp_server.count / 1000 <= 0.80


class TestFailover:
    def test_a_dead_relay_is_skipped_then_used_again_once_it_recovers(
        self, settings: Settings, producer: Producer, smtp_server: SmtpSink
    ) -> None:
        """Relay A refuses connections: all mail goes through B, A's breaker opens; A comes
        back, and after the cool-down it gets mail again."""
        dead_port = free_port()
        relays = [Relay.parse(f"smtp://127.0.0.1:{dead_port}"), Relay.parse(smtp_server.url)]
        tuned = settings.model_copy(
            update={"smtp_relays": relays, "breaker_failures": 2, "breaker_cooldown": 1.0}
        )
        worker = WorkerThread(tuned)
        producer.publish_many(make_job(n) for n in range(100))
        assert wait_until(lambda: smtp_server.count == 100, timeout=60)
        metrics = worker.worker.metrics.registry
        relay_a = {"relay": f"127.0.0.1:{dead_port}"}
        assert 0.0 == metrics.get_sample_value("mailfleet_relay_up", relay_a)

        with SmtpSink(port=dead_port) as revived:
            # Once the cool-down has passed one probe goes to A; it succeeds and A is back in
            # the pool. Keep mail flowing (in bounded batches) until that shows.
            published = 100
            while revived.count <= 10 and published < 1000:
                producer.publish_many(make_job(n) for n in range(published, published + 20))
                published += 20
                assert wait_until(
                    lambda n=published: smtp_server.count + revived.count == n, timeout=30
                )
            assert revived.count > 10
            assert 1.0 == metrics.get_sample_value("mailfleet_relay_up", relay_a)
            assert 0 == worker.stop()

    def test_with_every_relay_down_jobs_wait_in_the_delay_tiers(
        self, settings: Settings, producer: Producer, amqp_connection: Connection
    ) -> None:
        """No relay answers: nothing is lost, jobs end as `exhausted` dead letters."""
        relays = [Relay.parse(f"smtp://127.0.0.1:{free_port()}")]
        producer.publish_many(make_job(n) for n in range(3))

        worker = WorkerThread(settings.model_copy(update={"smtp_relays": relays}), burst=True)
        assert 0 == worker.join(timeout=60)

        letters = drain_dead_letters(amqp_connection, settings)
        assert {"job-0", "job-1", "job-2"} == {letter.job_id for letter in letters}
        assert {"exhausted"} == {letter.reason for letter in letters}


@pytest.fixture(scope="module")
def test_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def ca_file(test_ca: trustme.CA, tmp_path: Path) -> Path:
    path = tmp_path / "ca.pem"
    test_ca.cert_pem.write_to_path(str(path))
    return path


def _check_login(
    server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
) -> AuthResult:
    good = isinstance(auth_data, LoginPassword) and (
        auth_data.login.decode(),
        auth_data.password.decode(),
    ) == (USER, PASSWORD)
    return AuthResult(success=good, handled=False)  # unhandled: aiosmtpd answers 535 itself


@pytest.fixture
def tls_relay(test_ca: trustme.CA) -> Iterator[SmtpSink]:
    """A relay that demands STARTTLS and AUTH, with a certificate for 127.0.0.1."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    test_ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    with SmtpSink(
        tls_context=context,
        require_starttls=True,
        authenticator=_check_login,
        auth_require_tls=True,
        auth_required=True,
    ) as sink:
        yield sink


class TestTlsAndAuth:
    def test_starttls_and_auth_with_a_trusted_ca(
        self, settings: Settings, producer: Producer, tls_relay: SmtpSink, ca_file: Path
    ) -> None:
        """STARTTLS verified against the test CA, AUTH from the URL: delivered; the password
        never shows in the worker's log."""
        relay = Relay.parse(f"smtp://{USER}:{PASSWORD}@127.0.0.1:{tls_relay.port}?starttls=true")
        producer.publish(make_job(1))

        worker = WorkerProcess(
            settings.model_copy(update={"smtp_relays": [relay], "smtp_ca_file": ca_file}),
            "--burst",
        )
        try:
            assert 0 == worker.wait(timeout=60), worker.log()
            log = worker.log()
        finally:
            worker.stop()

        assert ["job-1"] == [message.job_id for message in tls_relay.messages]
        assert PASSWORD not in log

    def test_credentials_from_settings_when_the_url_has_none(
        self, settings: Settings, producer: Producer, tls_relay: SmtpSink, ca_file: Path
    ) -> None:
        """MAILFLEET_SMTP_USERNAME / _PASSWORD serve relays without credentials in the URL."""
        relay = Relay.parse(f"smtp://127.0.0.1:{tls_relay.port}?starttls=true")
        producer.publish(make_job(1))
        tuned = settings.model_copy(
            update={
                "smtp_relays": [relay],
                "smtp_ca_file": ca_file,
                "smtp_username": USER,
                "smtp_password": SecretStr(PASSWORD),
            }
        )

        assert 0 == WorkerThread(tuned, burst=True).join(timeout=60)

        assert 1 == tls_relay.count

    def test_an_unverified_certificate_is_refused(
        self,
        settings: Settings,
        producer: Producer,
        tls_relay: SmtpSink,
        amqp_connection: Connection,
    ) -> None:
        """Without the test CA the certificate does not verify: nothing is sent, and the job
        ends `exhausted` with the verification error."""
        relay = Relay.parse(f"smtp://{USER}:{PASSWORD}@127.0.0.1:{tls_relay.port}?starttls=true")
        producer.publish(make_job(1))
        tuned = settings.model_copy(update={"smtp_relays": [relay], "breaker_failures": 100})

        assert 0 == WorkerThread(tuned, burst=True).join(timeout=60)

        assert 0 == tls_relay.count
        [letter] = drain_dead_letters(amqp_connection, settings)
        assert "exhausted" == letter.reason
        assert "CERTIFICATE_VERIFY_FAILED" in letter.error
        assert PASSWORD not in letter.error

    def test_a_wrong_password_is_a_relay_failure_not_a_dead_recipient(
        self,
        settings: Settings,
        producer: Producer,
        tls_relay: SmtpSink,
        ca_file: Path,
        amqp_connection: Connection,
    ) -> None:
        """A 535 at AUTH is the relay's problem: retried, never `permanent`, never suppressed."""
        relay = Relay.parse(f"smtp://{USER}:wrong@127.0.0.1:{tls_relay.port}?starttls=true")
        producer.publish(make_job(1))
        tuned = settings.model_copy(
            update={"smtp_relays": [relay], "smtp_ca_file": ca_file, "breaker_failures": 100}
        )

        assert 0 == WorkerThread(tuned, burst=True).join(timeout=60)

        [letter] = drain_dead_letters(amqp_connection, settings)
        assert ("exhausted", "authentication failed: 535") == (letter.reason, letter.error)
