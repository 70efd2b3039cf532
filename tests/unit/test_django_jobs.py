"""Converting Django email messages into jobs: what is carried, dropped or refused."""

from __future__ import annotations

import base64
from email.mime.base import MIMEBase
from email.mime.text import MIMEText

import pytest
from django.core.mail import EmailMessage, EmailMultiAlternatives

from mailfleet.producer.django.backend import backend_config
from mailfleet.producer.django.conversion import job_from_message
from mailfleet.shared.errors import ConfigError, InvalidJobError
from mailfleet.shared.job import DEFAULT_LIMITS, EmailJob, Lane
from tests.django_setup import configure_django


@pytest.fixture(autouse=True)
def django_configured() -> None:
    configure_django()


def _convert(message: EmailMessage, lane: Lane = Lane.TRANSACTIONAL) -> EmailJob:
    return job_from_message(message, lane=lane, limits=DEFAULT_LIMITS)


def _message(**fields: object) -> EmailMessage:
    defaults: dict[str, object] = {
        "subject": "Hi",
        "body": "Hello",
        "from_email": "a@example.com",
        "to": ["b@example.org"],
    }
    return EmailMessage(**{**defaults, **fields})


class TestJobFromMessage:
    def test_addresses_subject_body_and_lane_are_carried(self) -> None:
        """From, to, cc, bcc, the first reply-to, subject, text and the lane land in the job."""
        message = _message(
            cc=["c@example.org"], bcc=["d@example.org"], reply_to=["r@example.com", "s@x.com"]
        )

        job = _convert(message, Lane.BULK)

        assert ("a@example.com", ["b@example.org"]) == (job.from_, job.to)
        assert (["c@example.org"], ["d@example.org"]) == (job.cc, job.bcc)
        assert "r@example.com" == job.reply_to
        assert ("Hi", "Hello", None, Lane.BULK) == (job.subject, job.text, job.html, job.lane)

    def test_an_html_only_message_becomes_html(self) -> None:
        """A message whose content_subtype is html carries its body as html, no text."""
        message = _message(body="<p>Hi</p>")
        message.content_subtype = "html"

        job = _convert(message)

        assert (None, "<p>Hi</p>") == (job.text, job.html)

    def test_a_non_html_alternative_is_refused(self) -> None:
        """Only one text/html alternative fits the job; others are refused by name."""
        message = EmailMultiAlternatives("Hi", "Hello", "a@example.com", ["b@example.org"])
        message.attach_alternative("BEGIN:VCALENDAR", "text/calendar")

        with pytest.raises(InvalidJobError, match="text/calendar") as raised:
            _convert(message)
        assert "alternatives" == raised.value.problems[0][0]

    def test_date_and_message_id_are_dropped_and_x_mailfleet_id_is_the_job_id(self) -> None:
        """The worker writes its own Date and Message-ID; X-Mailfleet-Id sets the job id."""
        headers = {
            "Date": "Mon, 1 Jan 2024 00:00:00 +0000",
            "Message-ID": "<x@example.com>",
            "X-Mailfleet-Id": "order-42-shipped",
            "List-Unsubscribe": "<mailto:unsub@example.com>",
        }

        job = _convert(_message(headers=headers))

        assert "order-42-shipped" == job.id
        assert {"List-Unsubscribe": "<mailto:unsub@example.com>"} == job.headers

    def test_a_reply_to_header_wins_over_the_reply_to_list(self) -> None:
        """As in Django, a Reply-To extra header overrides reply_to; its first address is kept."""
        message = _message(reply_to=["r@example.com"], headers={"Reply-To": "H <h@x.org>, i@x.org"})

        assert "H <h@x.org>" == _convert(message).reply_to

    @pytest.mark.parametrize("name", ["From", "To", "Cc", "Subject", "Content-Type", "Sender"])
    def test_headers_mailfleet_writes_are_refused_by_name(self, name: str) -> None:
        """Overriding a header mailfleet writes is an error naming headers.<name>."""
        with pytest.raises(InvalidJobError) as raised:
            _convert(_message(headers={name: "x@example.com"}))

        assert f"headers.{name}" == raised.value.problems[0][0]

    def test_tuple_and_mime_attachments_keep_their_bytes_and_types(self) -> None:
        """(filename, content, mimetype) tuples, text content and MIMEBase parts all carry bytes."""
        message = _message()
        message.attach("data.bin", b"\x00\xff\x10", "application/octet-stream")
        message.attach("notes.txt", "héllo", "text/plain")
        part = MIMEBase("application", "zip")
        part.set_payload(b"PK\x03\x04")
        part.add_header("Content-Disposition", "attachment", filename="a.zip")
        message.attach(part)

        job = _convert(message)

        found = [(a.filename, a.content_type, a.content()) for a in job.attachments]
        assert [
            ("data.bin", "application/octet-stream", b"\x00\xff\x10"),
            ("notes.txt", "text/plain", "héllo".encode()),
            ("a.zip", "application/zip", b"PK\x03\x04"),
        ] == found

    def test_an_attached_email_is_carried_whole(self) -> None:
        """A message/rfc822 attachment (a Django message) becomes the bytes of that email."""
        inner = _message(subject="Forwarded")
        message = _message()
        message.attach("fwd.eml", inner, "message/rfc822")

        [attachment] = _convert(message).attachments

        assert "message/rfc822" == attachment.content_type
        assert b"Subject: Forwarded" in base64.b64decode(attachment.content_base64)

    def test_an_unnamed_mime_part_gets_a_filename(self) -> None:
        """A MIMEBase attachment without a filename is named after its type."""
        message = _message()
        message.attach(MIMEText("plain words"))

        [attachment] = _convert(message).attachments

        assert ("attachment.txt", b"plain words") == (attachment.filename, attachment.content())


class TestBackendConfig:
    def test_a_bad_lane_is_a_config_error_naming_the_setting(self) -> None:
        """MAILFLEET_LANE must be a lane; the error names the setting."""
        with pytest.raises(ConfigError, match="MAILFLEET_LANE"):
            backend_config(lane="urgent")

    def test_an_unknown_override_is_refused(self) -> None:
        """A key in MAILFLEET_SETTINGS that is no setting is an error, not silently ignored."""
        from django.test import override_settings

        with (
            override_settings(MAILFLEET_SETTINGS={"amqp_uri": "amqp://x"}),
            pytest.raises(ConfigError, match="amqp_uri"),
        ):
            backend_config()

    def test_django_settings_and_kwargs_are_layered(self) -> None:
        """Keyword arguments win over Django settings, which win over the environment."""
        from django.test import override_settings

        with override_settings(
            MAILFLEET_NAMESPACE="shop",
            MAILFLEET_LANE="bulk",
            MAILFLEET_ON_COMMIT=False,
            MAILFLEET_SETTINGS={"MAILFLEET_PREFETCH": "7"},
        ):
            from_django = backend_config()
            from_kwargs = backend_config(lane="transactional", on_commit=True)

        assert ("shop", 7, Lane.BULK, False) == (
            from_django.settings.namespace,
            from_django.settings.prefetch,
            from_django.lane,
            from_django.on_commit,
        )
        assert (Lane.TRANSACTIONAL, True) == (from_kwargs.lane, from_kwargs.on_commit)
