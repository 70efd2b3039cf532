"""Complaint reports in the Abuse Reporting Format (RFC 5965), from message/feedback-report."""

from __future__ import annotations

from email.message import Message
from email.parser import HeaderParser
from email.policy import compat32

from mailfleet.worker.bounces.fields import address, text

COMPLAINTS = frozenset({"abuse", "fraud"})  # RFC 5965 §7.3; the others are not a user's complaint


def feedback_fields(part: Message) -> Message | None:
    """The fields of a message/feedback-report part (RFC 5965 §3.1).

    Python's parser reads this type as an embedded message: the fields become its headers.
    """
    payload = part.get_payload()
    if isinstance(payload, list) and payload and isinstance(payload[0], Message):
        return payload[0]
    if isinstance(payload, str):
        return HeaderParser(policy=compat32).parsestr(payload.lstrip("\r\n"), headersonly=True)
    return None


def feedback_type(fields: Message) -> str:
    """The Feedback-Type, lower-cased ("" if absent)."""
    words = text(fields, "Feedback-Type").lower().split()
    return words[0] if words else ""


def original_recipient(fields: Message) -> str | None:
    """Original-Rcpt-To (RFC 5965 §3.2), None when the reporter left it out or redacted it."""
    return address(text(fields, "Original-Rcpt-To"))
