"""``parse_report`` over a corpus of real report layouts (RFC 3464 DSNs, RFC 5965 ARF)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailfleet.worker.bounces.parse import MAX_BYTES, parse_report

CORPUS = Path(__file__).parent / "corpus" / "bounces"
REPORT = b"Content-Type: multipart/report; boundary=x\n\n"

# file → (kind, reason, [(recipient, action, status, hard)], feedback type, ref, Original-Rcpt-To)
EXPECTED: dict[
    str, tuple[str, str, list[tuple[str, str, str, bool]], str | None, str | None, str | None]
] = {
    "postfix-hard-5.1.1.eml": (
        "dsn",
        "",
        [("nobody@example.org", "failed", "5.1.1", True)],
        None,
        "send-1234",
        None,
    ),
    "postfix-delayed-4.4.1.eml": (
        "dsn",
        "",
        [("slow@example.org", "delayed", "4.4.1", False)],
        None,
        "send-5678",
        None,
    ),
    "exim-dsn.eml": (
        "dsn",
        "",
        [("ghost@example.org", "failed", "5.0.0", True)],
        None,
        "send-exim-1",
        None,
    ),
    # SMTPUTF8: message/global-delivery-status and message/global-headers (RFC 6533).
    "postfix-global-dsn-smtputf8.eml": (
        "dsn",
        "",
        [
            ("jörg@bücher.example", "failed", "5.1.1", True),
            ("anna@example.org", "delayed", "4.2.2", False),
        ],
        None,
        "send-utf8-1",
        None,
    ),
    "exim-classic-text.eml": ("ignored", "not a report", [], None, None, None),
    "o365-ndr-5.1.10.eml": (
        "dsn",
        "",
        [("Gone.User@contoso.com", "failed", "5.1.10", True)],
        None,
        "send-o365-1",
        None,
    ),
    "gmail-dsn.eml": (
        "dsn",
        "",
        [("nosuchuser@example.net", "failed", "5.1.1", True)],
        None,
        "send-gmail-1",
        None,
    ),
    # Action: failed makes it hard even with a 4.x.x status.
    "rfc3464-b1-simple.eml": (
        "dsn",
        "",
        [("louisl@larry.slip.umd.edu", "failed", "4.0.0", True)],
        None,
        None,
        None,
    ),
    "rfc3464-b2-multi.eml": (
        "dsn",
        "",
        [
            ("arathib@vnet.ibm.com", "failed", "5.0.0", True),
            ("johnh@hpnjld.njd.hp.com", "delayed", "4.0.0", False),
            ("wsnell@sdcc13.ucsd.edu", "failed", "5.0.0", True),
        ],
        None,
        None,
        None,
    ),
    "rfc3464-b3-delayed.eml": (
        "dsn",
        "",
        [("thomas@de-montfort.ac.uk", "delayed", "4.0.0", False)],
        None,
        None,
        None,
    ),
    "dsn-quoted-addresses.eml": (
        "dsn",
        "",
        [("only@example.org", "failed", "5.1.1", True)],
        None,
        "send-flufl-12",
        None,
    ),
    "arf-yahoo.eml": ("complaint", "", [], "abuse", "send-yahoo-1", "Reader@yahoo.com"),
    "arf-rfc5965.eml": ("complaint", "", [], "abuse", None, "user@example.com"),
    "arf-redacted-ref.eml": ("complaint", "", [], "abuse", "send-redacted-1", None),
    "arf-not-spam.eml": (
        "ignored",
        "feedback type not-spam",
        [],
        "not-spam",
        None,
        "user@example.com",
    ),
    "auto-reply-ooo.eml": ("auto_reply", "auto-reply", [], None, None, None),
    "auto-reply-precedence.eml": ("auto_reply", "auto-reply", [], None, None, None),
    "broken-mime.eml": (
        "ignored",
        "unparseable: multipart/report without parts",
        [],
        None,
        None,
        None,
    ),
    "non-utf8-headers.eml": ("ignored", "non-UTF-8 headers", [], None, None, None),
}


def test_every_corpus_file_has_an_expectation() -> None:
    """A new .eml in the corpus must come with what it yields."""
    assert sorted(EXPECTED) == sorted(p.name for p in CORPUS.glob("*.eml"))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus(name: str) -> None:
    """Each layout yields its kind, recipients (hard or soft), feedback type and ref."""
    kind, reason, recipients, feedback, ref, original_rcpt = EXPECTED[name]
    report = parse_report((CORPUS / name).read_bytes())
    assert (kind, reason) == (report.kind, report.reason)
    assert recipients == [(r.recipient, r.action, r.status, r.hard) for r in report.recipients]
    assert feedback == report.feedback_type
    assert ref == report.mailfleet_ref
    assert original_rcpt == report.original_recipient


def test_dsn_details() -> None:
    """Diagnostic-Code and Remote-MTA lose their type prefix; folded lines are joined."""
    report = parse_report((CORPUS / "postfix-hard-5.1.1.eml").read_bytes())
    (rcpt,) = report.recipients
    assert (
        "550 5.1.1 <nobody@example.org>: Recipient address rejected: User unknown in virtual"
        " mailbox table"
    ) == rcpt.diagnostic
    assert "mx.example.org" == rcpt.remote_mta
    assert "job-1234.0@mail.example.com" == report.original_message_id
    assert ("nobody@example.org",) == report.hard_recipients


def test_no_address_from_the_returned_original() -> None:
    """Only Final-Recipient counts, never addresses quoted in the text (flufl.bounce#12)."""
    report = parse_report((CORPUS / "dsn-quoted-addresses.eml").read_bytes())
    assert ["only@example.org"] == [r.recipient for r in report.recipients]


@pytest.mark.parametrize(
    ("envelope_to", "token"),
    [
        ("bounces+c2VuZC0xMjM0@mail.example.com", "c2VuZC0xMjM0"),
        ("<bounces+abc=def@Mail.Example.com>", "abc=def"),
        ("bounces@mail.example.com", None),
        ("bounces+@mail.example.com", None),
        ("not an address", None),
        (None, None),
    ],
)
def test_verp_token(envelope_to: str | None, token: str | None) -> None:
    """The token of a VERP envelope recipient ``local+token@domain``, for every kind."""
    raw = (CORPUS / "postfix-hard-5.1.1.eml").read_bytes()
    assert token == parse_report(raw, envelope_to=envelope_to).verp_token


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\r\n\r\n",
        b"\x00\xff" * 100,
        REPORT + b"--x\nContent-Type: message/delivery-status",
        b"Content-Type: multipart/report; report-type=delivery-status; boundary=x\n\n--x--\n",
        REPORT + b"--x\nContent-Type: message/feedback-report\n",
        # A read receipt (RFC 8098) is a report, but not one we read.
        b"Content-Type: multipart/report; report-type=disposition-notification; boundary=x\n\n"
        b"--x\nContent-Type: message/disposition-notification\n\nDisposition: manual-action/"
        b"MDN-sent-manually; displayed\n--x--\n",
    ],
    ids=["empty", "blank", "binary", "truncated", "no-parts", "empty-feedback", "mdn"],
)
def test_garbage_is_ignored(raw: bytes) -> None:
    """Anything that is not a usable report is ignored with a reason, never an exception."""
    report = parse_report(raw)
    assert "ignored" == report.kind
    assert report.reason


def test_huge_message_is_ignored() -> None:
    """A 20 MB message is read only up to MAX_BYTES, and still comes out as ignored."""
    line = b"x" * 998 + b"\r\n"
    raw = b"From: a@example.org\r\nSubject: big\r\n\r\n" + line * (
        20 * 1024 * 1024 // len(line) + 1
    )
    assert len(raw) > 20 * MAX_BYTES
    report = parse_report(raw)
    assert ("ignored", "not a report") == (report.kind, report.reason)


def test_huge_dsn_keeps_its_report() -> None:
    """The report parts come first, so a DSN with a 20 MB returned original still parses."""
    raw = (CORPUS / "postfix-hard-5.1.1.eml").read_bytes()
    big = raw.replace(b"Hello, here is the news.\n", b"news " * (4 * 1024 * 1024))
    assert len(big) > 20 * 1024 * 1024
    report = parse_report(big)
    assert ["nobody@example.org"] == [r.recipient for r in report.recipients]
