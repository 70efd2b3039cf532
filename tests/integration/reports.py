"""Bounce and complaint messages as mailbox providers send them, built around an email the
test's relay received: a Postfix-style DSN (RFC 3464) and an ARF complaint (RFC 5965)."""

from __future__ import annotations

import socket
from email import message_from_bytes
from email.policy import compat32

from mailfleet.producer.devtools.sink import ReceivedMessage


def returned_headers(message: ReceivedMessage) -> str:
    """The header block of ``message`` as the relay got it (what a report returns)."""
    head = message.data.replace(b"\r\n", b"\n").split(b"\n\n", 1)[0]
    return head.decode("utf-8", "replace")


def ref_of(message: ReceivedMessage) -> str:
    value = message_from_bytes(message.data, policy=compat32)["X-Mailfleet-Ref"]
    assert value is not None
    return str(value)


def dsn(
    recipient: str,
    headers: str,
    *,
    status: str = "5.1.1",
    action: str = "failed",
    to: str = "postmaster@example.com",
) -> bytes:
    diagnostic = f"smtp; 550 {status} <{recipient}>: Recipient address rejected: User unknown"
    if status.startswith("4"):
        diagnostic = "X-Postfix; connect to mx.example.org[192.0.2.30]:25: Connection timed out"
    text = f"""\
Return-Path: <>
From: MAILER-DAEMON@mx.example.net (Mail Delivery System)
To: {to}
Subject: Undelivered Mail Returned to Sender
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B0UND"
Message-Id: <dsn-{abs(hash((recipient, status))) % 10**8}@mx.example.net>

--B0UND
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx.example.net. Decoy: <decoy@example.org> failed.

--B0UND
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net

Final-Recipient: rfc822; {recipient}
Original-Recipient: rfc822;{recipient}
Action: {action}
Status: {status}
Remote-MTA: dns; mx.example.org
Diagnostic-Code: {diagnostic}

--B0UND
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

{headers}
To: decoy@example.org

--B0UND--
"""
    return text.replace("\n", "\r\n").encode()


def complaint(headers: str, original_rcpt: str | None = None) -> bytes:
    rcpt = f"Original-Rcpt-To: {original_rcpt}\n" if original_rcpt else ""
    text = f"""\
From: staff@fbl.example.net
To: fbl@example.com
Subject: Abuse report
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="ARF"

--ARF
Content-Type: text/plain; charset=us-ascii

This is an email abuse report for an email message received from IP 192.0.2.1.

--ARF
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: ExampleFBL/1.0
Version: 1
{rcpt}Arrival-Date: Tue, 01 Dec 2026 10:00:00 +0000

--ARF
Content-Type: text/rfc822-headers

{headers}

--ARF--
"""
    return text.replace("\n", "\r\n").encode()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
