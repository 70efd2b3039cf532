"""``parse_report``: what a message returned to us is (RFC 3464, RFC 5965, RFC 3834).

Pure and total: any input gives a Report, never an exception. Only a bounded prefix of the
message is parsed: report parts come before the returned original (RFC 6522 §3), so a
20 MB bounce costs no more than its first megabyte.
"""

from __future__ import annotations

import email
from dataclasses import replace
from email.message import Message
from email.policy import compat32

from mailfleet.worker.bounces import arf, dsn
from mailfleet.worker.bounces.auto import is_auto_reply, is_from_daemon
from mailfleet.worker.bounces.fields import message_id, original_of, text, verp_token
from mailfleet.worker.bounces.model import Report

MAX_BYTES = 1 << 20


def parse_report(raw: bytes, envelope_to: str | None = None) -> Report:
    """Classify ``raw``: a DSN, an ARF complaint, an auto-reply, or ignored with a reason.

    ``envelope_to`` is the envelope recipient the report came to; a VERP address
    ``local+token@domain`` gives ``verp_token``.
    """
    token = verp_token(envelope_to)
    try:
        report = _classify(raw[:MAX_BYTES])
    except Exception as exc:  # hostile input must never stop the caller
        report = Report(kind="ignored", reason=f"unparseable: {type(exc).__name__}")
    return replace(report, verp_token=token)


def _classify(raw: bytes) -> Report:
    if not raw.strip():
        return _ignored("empty")
    if not _utf8_headers(raw):
        return _ignored("non-UTF-8 headers")
    msg = email.message_from_bytes(raw, policy=compat32)
    if msg.get_content_type() == "multipart/report":
        return _report(msg)
    if not is_from_daemon(msg) and is_auto_reply(msg):
        return Report(kind="auto_reply", reason="auto-reply")
    return _ignored("not a report")


def _utf8_headers(raw: bytes) -> bool:
    # Only the outer header block: a returned original may carry legacy 8-bit headers.
    end = min((i for i in (raw.find(b"\r\n\r\n"), raw.find(b"\n\n")) if i >= 0), default=len(raw))
    try:
        raw[:end].decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _report(msg: Message) -> Report:
    payload = msg.get_payload()
    if not msg.is_multipart() or not isinstance(payload, list):
        return _ignored("unparseable: multipart/report without parts")
    parts = [part for part in payload if isinstance(part, Message)]
    types: dict[str, Message] = {}
    for part in parts:
        types.setdefault(part.get_content_type(), part)  # the first part of each type counts
    original = original_of(parts)
    ref = (text(original, "X-Mailfleet-Ref") or None) if original is not None else None
    msgid = message_id(original) if original is not None else None
    status = next((types[t] for t in dsn.STATUS_TYPES if t in types), None)
    if status is not None:
        recipients = dsn.recipients(status)
        if not recipients:
            return _ignored("delivery report without recipients")
        return Report(
            kind="dsn",
            recipients=recipients,
            original_message_id=msgid,
            mailfleet_ref=ref,
        )
    if "message/feedback-report" in types:
        fields = arf.feedback_fields(types["message/feedback-report"])
        if fields is None:
            return _ignored("unparseable: empty feedback report")
        ftype = arf.feedback_type(fields)
        return Report(
            kind="complaint" if ftype in arf.COMPLAINTS else "ignored",
            reason="" if ftype in arf.COMPLAINTS else f"feedback type {ftype or 'missing'}",
            feedback_type=ftype or None,
            original_recipient=arf.original_recipient(fields),
            original_message_id=msgid,
            mailfleet_ref=ref,
        )
    report_type = msg.get_param("report-type") or ""
    return _ignored(f"unsupported report type {str(report_type).lower() or 'missing'}")


def _ignored(reason: str) -> Report:
    return Report(kind="ignored", reason=reason)
