"""The Django email backend turns real Django messages into jobs that a worker delivers
intact, publishes after the transaction commits, and honours ``fail_silently``."""

from __future__ import annotations

from collections.abc import Iterator
from email.message import Message
from email.mime.image import MIMEImage
from email.utils import getaddresses

import pytest
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import transaction
from django.test import override_settings
from kombu.connection import Connection
from pydantic import SecretStr

from mailfleet.producer.devtools.sink import ReceivedMessage, SmtpSink, free_port
from mailfleet.producer.django import EmailBackend
from mailfleet.producer.topology import queue_depths, topology_of
from mailfleet.shared.errors import BrokerUnavailable
from mailfleet.shared.settings import Settings
from tests.django_setup import configure_django
from tests.integration.helpers import WorkerThread

PDF = bytes(range(256)) * 40  # every byte value, so any re-encoding would show
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(255, -1, -1)) * 8
BACKEND = "mailfleet.producer.django.EmailBackend"


@pytest.fixture(autouse=True)
def django_configured() -> None:
    configure_django()


@pytest.fixture
def django_mailfleet(settings: Settings) -> Iterator[None]:
    """Point the backend at the test namespace through Django settings, as a project would."""
    with override_settings(
        MAILFLEET_NAMESPACE=settings.namespace,
        MAILFLEET_SETTINGS={
            "amqp_url": settings.amqp_url.get_secret_value(),
            "MAILFLEET_REDIS_URL": settings.redis_url.get_secret_value(),
        },
        MAILFLEET_LANE="transactional",
    ):
        yield


def _invoice(**backend_options: object) -> EmailMultiAlternatives:
    message = EmailMultiAlternatives(
        subject="Your invoice",
        body="Plain text body.",
        from_email="Shop <shop@example.com>",
        to=["Ann Example <ann@example.org>"],
        cc=["accounts@example.org"],
        bcc=["audit@example.net"],
        reply_to=["support@example.com", "other@example.com"],
        headers={"X-Campaign": "spring", "Message-ID": "<django-made@example.com>"},
        connection=get_connection(BACKEND, **backend_options),
    )
    message.attach_alternative("<p>HTML <b>body</b></p>", "text/html")
    message.attach("invoice.pdf", PDF, "application/pdf")
    logo = MIMEImage(PNG, "png")
    logo.add_header("Content-Disposition", "attachment", filename="logo.png")
    message.attach(logo)
    return message


def _lane_depth(connection: Connection, settings: Settings) -> int:
    return queue_depths(connection, topology_of(settings))[f"{settings.namespace}.transactional"][0]


def _deliver(settings: Settings, smtp_server: SmtpSink, count: int) -> list[ReceivedMessage]:
    WorkerThread(settings, burst=True).join(60)
    assert smtp_server.wait_for(count, timeout=10)
    return smtp_server.messages


def _parts(message: Message) -> dict[str, Message]:
    """Leaf parts by filename, or by content type for the bodies."""
    return {
        part.get_filename() or part.get_content_type(): part
        for part in message.walk()
        if not part.is_multipart()
    }


class TestDjangoBackend:
    def test_a_django_message_arrives_intact(
        self, settings: Settings, smtp_server: SmtpSink, django_mailfleet: None
    ) -> None:
        """Bodies, attachments byte for byte, headers, reply-to and a Bcc only in the envelope."""
        with override_settings(MAILFLEET_ON_COMMIT=False):
            sent = _invoice().send()

        assert 1 == sent
        [received] = _deliver(settings, smtp_server, 1)
        message = received.parsed()
        parts = _parts(message)
        assert "shop@example.com" == received.mail_from
        assert {"ann@example.org", "accounts@example.org", "audit@example.net"} == set(
            received.rcpt_tos
        )
        assert "Your invoice" == message["Subject"]
        assert [("Ann Example", "ann@example.org")] == getaddresses([message["To"]])
        assert "accounts@example.org" == message["Cc"]
        assert message["Bcc"] is None
        assert b"audit@example.net" not in received.data
        assert "support@example.com" == message["Reply-To"]
        assert "spring" == message["X-Campaign"]
        assert "<django-made@example.com>" != message["Message-ID"]
        assert b"Plain text body." == parts["text/plain"].get_payload(decode=True)
        assert b"<p>HTML <b>body</b></p>" == parts["text/html"].get_payload(decode=True)
        assert "application/pdf" == parts["invoice.pdf"].get_content_type()
        assert PDF == parts["invoice.pdf"].get_payload(decode=True)
        assert "image/png" == parts["logo.png"].get_content_type()
        assert PNG == parts["logo.png"].get_payload(decode=True)

    def test_inside_a_transaction_it_publishes_on_commit(
        self,
        settings: Settings,
        smtp_server: SmtpSink,
        amqp_connection: Connection,
        django_mailfleet: None,
    ) -> None:
        """Nothing is published before the commit; the message is published after it."""
        with transaction.atomic():
            assert 1 == _invoice().send()
            assert 0 == _lane_depth(amqp_connection, settings)

        assert 1 == _lane_depth(amqp_connection, settings)
        [received] = _deliver(settings, smtp_server, 1)
        assert "Your invoice" == received.parsed()["Subject"]

    def test_a_rolled_back_transaction_publishes_nothing(
        self, settings: Settings, amqp_connection: Connection, django_mailfleet: None
    ) -> None:
        """Mail sent inside a transaction that rolls back is never published."""
        with transaction.atomic():
            assert 1 == _invoice().send()
            transaction.set_rollback(True)

        assert 0 == _lane_depth(amqp_connection, settings)

    def test_one_connection_publishes_many_messages(
        self, settings: Settings, smtp_server: SmtpSink, django_mailfleet: None
    ) -> None:
        """send_messages on an opened backend publishes them all and returns the count."""
        backend = EmailBackend(on_commit=False)
        with backend:
            messages = [_invoice() for _ in range(5)]
            assert 5 == backend.send_messages(messages)

        assert 5 == len(_deliver(settings, smtp_server, 5))


class TestFailSilently:
    @pytest.fixture
    def unreachable(self, settings: Settings) -> Settings:
        return settings.model_copy(
            update={"amqp_url": SecretStr(f"amqp://guest:secret@127.0.0.1:{free_port()}/")}
        )

    def test_fail_silently_returns_zero_and_counts(self, unreachable: Settings) -> None:
        """With an unreachable broker and fail_silently the backend returns 0 and counts it."""
        backend = EmailBackend(fail_silently=True, mailfleet_settings=unreachable)

        sent = backend.send_messages([_invoice()])

        assert 0 == sent
        assert 1 == backend.failed

    def test_without_fail_silently_the_error_is_raised(self, unreachable: Settings) -> None:
        """Unreachable broker: BrokerUnavailable naming the setting, never the password."""
        backend = EmailBackend(mailfleet_settings=unreachable)

        with pytest.raises(BrokerUnavailable, match="MAILFLEET_AMQP_URL") as raised:
            backend.send_messages([_invoice()])
        assert "secret" not in str(raised.value)
