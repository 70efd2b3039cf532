"""Building the RFC 5322 message of a job (``worker/mime/build.py``)."""

from __future__ import annotations

import base64
import email
import email.message
from email.header import decode_header, make_header
from email.utils import getaddresses, parsedate_to_datetime
from typing import Any

import pytest

from mailfleet.shared.job import EmailJob, parse_job
from mailfleet.shared.names import JOB_ID_HEADER
from mailfleet.worker.mime.build import build_message, build_with_email_mime


def make_job(**changes: Any) -> EmailJob:
    """A valid job with ``changes`` applied (``from_`` for the sender)."""
    data: dict[str, Any] = {
        "id": "job-1",
        "from": "Shop <shop@example.org>",
        "to": ["Ann <ann@example.org>"],
        "subject": "Your order",
        "text": "Thank you.",
    }
    if "from_" in changes:
        data["from"] = changes.pop("from_")
    data.update(changes)
    return parse_job({key: value for key, value in data.items() if value is not None})


def parse(job: EmailJob) -> email.message.Message:
    return email.message_from_bytes(build_message(job))


def decoded(value: str) -> str:
    """A header value with RFC 2047 encoded words decoded."""
    return str(make_header(decode_header(value)))


def decoded_addresses(value: str) -> list[tuple[str, str]]:
    return [(decoded(name), address) for name, address in getaddresses([value])]


def attachment(filename: str, content: bytes, content_type: str) -> dict[str, str]:
    return {
        "filename": filename,
        "content_type": content_type,
        "content_base64": base64.b64encode(content).decode(),
    }


class TestHeaders:
    """Address, subject and bookkeeping headers."""

    def test_address_headers(self) -> None:
        """From, To, Cc and Reply-To carry the job's addresses."""
        message = parse(
            make_job(
                to=["Ann <ann@example.org>", "bob@example.org"],
                cc=["carl@example.org"],
                reply_to="Help <help@example.org>",
            )
        )
        expected = [
            "Shop <shop@example.org>",
            "Ann <ann@example.org>, bob@example.org",
            "carl@example.org",
            "Help <help@example.org>",
        ]
        assert expected == [message["From"], message["To"], message["Cc"], message["Reply-To"]]

    def test_absent_optional_headers(self) -> None:
        """Without cc or reply_to there is no Cc or Reply-To header."""
        message = parse(make_job())
        assert (None, None) == (message["Cc"], message["Reply-To"])

    def test_bcc_never_written(self) -> None:
        """Bcc recipients appear nowhere in the message."""
        raw = build_message(make_job(bcc=["Hidden <hidden@secret.example>"]))
        message = email.message_from_bytes(raw)
        assert (None, False, False) == (
            message["Bcc"],
            b"hidden@secret.example" in raw,
            b"Hidden" in raw,
        )

    def test_bcc_only(self) -> None:
        """A job for bcc recipients only has no To header and no Bcc header."""
        raw = build_message(make_job(to=None, bcc=["hidden@secret.example"]))
        message = email.message_from_bytes(raw)
        assert (None, None, False) == (message["To"], message["Bcc"], b"hidden@" in raw)

    def test_subject(self) -> None:
        """The subject is written as given."""
        assert "Your order" == parse(make_job())["Subject"]

    def test_job_id_header(self) -> None:
        """X-Mailfleet-Id carries the job id."""
        assert ["order-42"] == parse(make_job(id="order-42")).get_all(JOB_ID_HEADER)

    def test_date(self) -> None:
        """A Date header with a time zone is written."""
        date = parsedate_to_datetime(parse(make_job())["Date"])
        assert date.utcoffset() is not None

    def test_one_of_each(self) -> None:
        """Each standard header is written exactly once."""
        message = parse(make_job(cc=["carl@example.org"], reply_to="help@example.org"))
        names = ["From", "To", "Cc", "Reply-To", "Subject", "Date", "Message-ID", JOB_ID_HEADER]
        assert [1] * len(names) == [len(message.get_all(name, [])) for name in names]

    def test_extra_headers(self) -> None:
        """Extra headers are written with their values."""
        headers = {"X-Campaign": "spring", "List-Unsubscribe": "<mailto:unsub@example.org>"}
        message = parse(make_job(headers=headers))
        assert headers == {name: message[name] for name in headers}

    def test_non_ascii_extra_header(self) -> None:
        """A non-ASCII extra header value is encoded and decodes back."""
        message = parse(make_job(headers={"X-Note": "für Zoë"}))
        assert "für Zoë" == decoded(message["X-Note"])


class TestMessageId:
    """Message-ID: stable per job id."""

    def test_stable_for_same_id(self) -> None:
        """The same job id gives the same Message-ID, even if the content differs."""
        first = parse(make_job(id="job-7"))["Message-ID"]
        second = parse(make_job(id="job-7", subject="Other", text="Other"))["Message-ID"]
        assert first == second

    def test_differs_across_ids(self) -> None:
        """Different job ids give different Message-IDs."""
        ids = [parse(make_job(id=f"job-{n}"))["Message-ID"] for n in range(20)]
        assert 20 == len(set(ids))

    def test_shape(self) -> None:
        """The Message-ID is <token@sender-domain>."""
        value = parse(make_job(from_="Shop <shop@Mail.Example.org>"))["Message-ID"]
        local, _, domain = value.removeprefix("<").removesuffix(">").partition("@")
        assert (True, True, "mail.example.org") == (
            value.startswith("<") and value.endswith(">"),
            local.isalnum(),
            domain,
        )


class TestNonAscii:
    """Non-ASCII text is encoded (RFC 2047 / charset) and decodes back."""

    SUBJECT = "Grüße — 日本語, ¿qué tal? " * 4

    def test_subject_encoded(self) -> None:
        """A non-ASCII subject is written in ASCII and decodes to the original."""
        raw = build_message(make_job(subject=self.SUBJECT))
        head = raw.split(b"\r\n\r\n", 1)[0]
        message = email.message_from_bytes(raw)
        assert (True, self.SUBJECT) == (head.isascii(), decoded(message["Subject"]))

    def test_display_names_encoded(self) -> None:
        """Non-ASCII display names decode back; the addresses stay readable."""
        raw = build_message(
            make_job(
                from_="Zoë Müller <zoe@example.org>",
                to=["Åsa Öberg <asa@example.org>", "bob@example.org"],
                cc=['"Doe, John" <john@example.org>'],
            )
        )
        message = email.message_from_bytes(raw)
        expected = [
            [("Zoë Müller", "zoe@example.org")],
            [("Åsa Öberg", "asa@example.org"), ("", "bob@example.org")],
            [("Doe, John", "john@example.org")],
        ]
        actual = [decoded_addresses(message[name]) for name in ("From", "To", "Cc")]
        assert (expected, True) == (actual, raw.split(b"\r\n\r\n", 1)[0].isascii())

    def test_addresses_not_encoded(self) -> None:
        """Only display names are encoded: the address itself appears as is."""
        raw = build_message(make_job(to=["Åsa Öberg <asa@example.org>"]))
        assert b"<asa@example.org>" in raw

    def test_body(self) -> None:
        """A non-ASCII body decodes back to the original text."""
        text = "Grüße, Zoë! 日本語\n"
        message = parse(make_job(text=text))
        payload = message.get_payload(decode=True)
        assert isinstance(payload, bytes)
        assert text == payload.decode(message.get_content_charset() or "ascii")


class TestStructure:
    """MIME structure: single part, alternative, mixed."""

    def test_text_only(self) -> None:
        """A text-only job is a single text/plain part."""
        message = parse(make_job(text="Hello"))
        assert ("text/plain", False, "Hello") == (
            message.get_content_type(),
            message.is_multipart(),
            message.get_payload(),
        )

    def test_html_only(self) -> None:
        """An html-only job is a single text/html part."""
        message = parse(make_job(text=None, html="<p>Hello</p>"))
        assert ("text/html", "<p>Hello</p>") == (message.get_content_type(), message.get_payload())

    def test_text_and_html(self) -> None:
        """Text and html make multipart/alternative, plain first, html (preferred) last."""
        message = parse(make_job(text="Hello", html="<p>Hello</p>"))
        parts = [part.get_content_type() for part in message.walk()]
        assert ["multipart/alternative", "text/plain", "text/html"] == parts

    def test_attachment(self) -> None:
        """An attachment makes multipart/mixed: the body first, then the file."""
        content = bytes(range(256)) * 4
        message = parse(
            make_job(
                text="Hello",
                html="<p>Hello</p>",
                attachments=[attachment("report.pdf", content, "application/pdf")],
            )
        )
        parts = [part.get_content_type() for part in message.walk()]
        expected = ["multipart/mixed", "multipart/alternative", "text/plain", "text/html"]
        assert [*expected, "application/pdf"] == parts

    @pytest.mark.parametrize(
        ("filename", "content", "content_type"),
        [
            ("report.pdf", bytes(range(256)) * 4, "application/pdf"),
            ("notes.txt", b"line 1\nline 2\n", "text/plain"),
            ("photo.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 100, "image/png"),
            ("résumé — 2026.pdf", b"%PDF-1.7", "application/pdf"),
            ("empty.bin", b"", "application/octet-stream"),
        ],
    )
    def test_attachment_round_trip(self, filename: str, content: bytes, content_type: str) -> None:
        """An attachment keeps its type, filename and exact bytes."""
        message = parse(make_job(attachments=[attachment(filename, content, content_type)]))
        part = message.get_payload()[1]
        assert (content_type, "attachment", filename, content) == (
            part.get_content_type(),
            part.get_content_disposition(),
            part.get_filename(),
            part.get_payload(decode=True),
        )

    def test_several_attachments_in_order(self) -> None:
        """Several attachments follow the body in the order given."""
        files = [attachment(f"f{n}.txt", f"file {n}".encode(), "text/plain") for n in range(3)]
        message = parse(make_job(attachments=files))
        parts = message.get_payload()[1:]
        assert [("f0.txt", b"file 0"), ("f1.txt", b"file 1"), ("f2.txt", b"file 2")] == [
            (part.get_filename(), part.get_payload(decode=True)) for part in parts
        ]


class TestWireFormat:
    """The bytes are ready for SMTP DATA."""

    @pytest.mark.parametrize(
        "changes",
        [
            {"text": "a\nb\rc\r\nd"},
            {"text": "x" * 3000},
            {"subject": "word " * 400},
            {"subject": "é" * 2000},
            {"subject": "x" * 1200},
            {"headers": {"List-Unsubscribe": f"<https://example.org/u?t={'a' * 1200}>"}},
            {"to": [f"User {n} <user{n}@example.org>" for n in range(100)]},
        ],
        ids=[
            "mixed-newlines",
            "long-body-line",
            "long-subject",
            "long-non-ascii-subject",
            "long-unbreakable-subject",
            "long-unbreakable-header",
            "many-recipients",
        ],
    )
    def test_crlf_and_short_lines(self, changes: dict[str, Any]) -> None:
        """Every line ends in CRLF and has at most 998 octets (RFC 5322 2.1.1)."""
        raw = build_message(make_job(**changes))
        lines = raw.split(b"\r\n")
        assert (False, False, []) == (
            b"\n" in raw.replace(b"\r\n", b""),
            b"\r" in raw.replace(b"\r\n", b""),
            [len(line) for line in lines if len(line) > 998],
        )

    def test_body_text_survives(self) -> None:
        """Text with mixed line ends keeps every line."""
        message = parse(make_job(text="one\ntwo\r\nthree"))
        payload = message.get_payload(decode=True)
        assert isinstance(payload, bytes)
        assert ["one", "two", "three"] == payload.decode().splitlines()


def _shape(raw: bytes) -> list[tuple[str, object]]:
    """Headers (but Date) and decoded bodies of every part, boundaries aside."""
    message = email.message_from_bytes(raw)
    shape: list[tuple[str, object]] = []
    for part in message.walk():
        shape += [
            (name, str(make_header(decode_header(value))))
            for name, value in part.items()
            if name != "Date" and not (name == "Content-Type" and "boundary=" in value)
        ]
        shape.append(("payload", part.get_payload(decode=True)))
    return shape


class TestDirectWriter:
    @pytest.mark.parametrize(
        "fields",
        [
            {"text": "Hello\nworld\n"},
            {"text": "Grüße aus Köln", "subject": "Grüße"},
            {"text": "x" * 2000},
            {"text": "line one\r\nline two", "html": "<p>Hello <b>you</b></p>"},
            {"html": "<p>only html</p>", "cc": ["Zoë Ünïcode <z@example.net>"]},
            {"text": "t", "subject": "word " * 40, "headers": {"X-Long": "v " * 60}},
            {"text": "t", "headers": {"List-Unsubscribe": "<https://x.example/" + "u" * 950 + ">"}},
            {"text": ".leading dot\nFrom the start\n", "reply_to": "Ann <ann@example.org>"},
        ],
    )
    def test_same_message_as_the_email_mime_classes(self, fields: dict[str, object]) -> None:
        """The fast writer yields the headers and bodies email.mime would, with CRLF lines."""
        job = parse_job({"from": "Shop <s@example.com>", "to": ["a@example.org"], **fields})

        fast = build_message(job)

        assert _shape(build_with_email_mime(job)) == _shape(fast)
        assert b"\n" not in fast.replace(b"\r\n", b"")
        assert max(len(line) for line in fast.split(b"\r\n")) <= 998
