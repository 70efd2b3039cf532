"""Turning a Django ``EmailMessage`` / ``EmailMultiAlternatives`` into an :class:`EmailJob`.

Pure conversion, no I/O. What the job cannot carry is refused with an
:class:`InvalidJobError` naming the field, never silently changed:

- body → ``text`` (``html`` when ``content_subtype == "html"``); one ``text/html``
  alternative → ``html``; any other alternative type is refused;
- attachments: ``(filename, content, mimetype)`` tuples and ``MIMEBase`` parts (their decoded
  payload; a ``message/rfc822`` part is carried whole; text parts re-encoded to UTF-8); inline
  parts with a ``Content-ID`` are refused (they would break ``cid:`` images);
- ``reply_to`` → its first address (a ``Reply-To`` extra header wins, as in Django);
- extra headers: ``Date``, ``Message-ID`` and ``MIME-Version`` are dropped (the worker writes
  its own, with a Message-ID that is stable per job id); ``X-Mailfleet-Id`` becomes the job id
  (the idempotency key); ``From``, ``To``, ``Cc``, ``Subject``, ``Content-*`` and the other
  headers mailfleet writes itself are refused.
"""

from __future__ import annotations

import base64
import mimetypes
from email.message import Message
from email.mime.base import MIMEBase
from email.utils import formataddr, getaddresses
from typing import Any

import structlog
from django.core.mail import EmailMessage as DjangoEmailMessage

from mailfleet.shared.errors import InvalidJobError
from mailfleet.shared.job import PROTECTED_HEADERS, EmailJob, JobLimits, Lane, parse_job
from mailfleet.shared.names import JOB_ID_HEADER

log = structlog.get_logger("mailfleet.django")

DROPPED_HEADERS = frozenset({"date", "message-id", "mime-version"})
DEFAULT_MIME_TYPE = "application/octet-stream"


def job_from_message(message: Any, *, lane: Lane, limits: JobLimits) -> EmailJob:
    """The job for one Django message; :class:`InvalidJobError` if it cannot be carried."""
    headers, job_id, reply_to_header = _split_headers(dict(message.extra_headers))
    text, html = _bodies(message)
    reply_to = reply_to_header or next((str(a) for a in message.reply_to), None)
    data: dict[str, Any] = {
        "from": str(message.from_email),
        "to": [str(address) for address in message.to],
        "cc": [str(address) for address in message.cc],
        "bcc": [str(address) for address in message.bcc],
        "reply_to": reply_to,
        "subject": str(message.subject),
        "text": text,
        "html": html,
        "headers": headers,
        "attachments": [_attachment(item) for item in message.attachments],
        "lane": lane,
    }
    if job_id is not None:
        data["id"] = job_id
    return parse_job(data, limits)


def _split_headers(extra: dict[Any, Any]) -> tuple[dict[str, str], str | None, str | None]:
    """``(headers to carry, job id, Reply-To address)`` from Django's ``extra_headers``."""
    headers: dict[str, str] = {}
    job_id = reply_to = None
    problems = []
    for raw_name, raw_value in extra.items():
        name, value, key = str(raw_name), str(raw_value), str(raw_name).lower()
        if key in DROPPED_HEADERS:
            log.debug("django_header_dropped", header=name)
        elif key == JOB_ID_HEADER.lower():
            job_id = value
        elif key == "reply-to":
            reply_to = _first_address(value)  # documented: the job carries one Reply-To
        elif key in PROTECTED_HEADERS:
            problems.append(
                (f"headers.{name}", "mailfleet writes this header from the message itself")
            )
        else:
            headers[name] = value
    if problems:
        raise InvalidJobError(problems)
    return headers, job_id, reply_to


def _first_address(value: str) -> str | None:
    addresses = [pair for pair in getaddresses([value]) if pair[1]]
    return formataddr(addresses[0]) if addresses else None


def _text(content: Any) -> str:
    if not isinstance(content, bytes):
        return str(content)
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidJobError([("body", "bytes that are not UTF-8 text")]) from None


def _bodies(message: Any) -> tuple[str | None, str | None]:
    body = _text(message.body)
    text, html = (None, body) if message.content_subtype == "html" else (body, None)
    for content, mimetype in getattr(message, "alternatives", []):
        if mimetype != "text/html" or html is not None:
            raise InvalidJobError(
                [("alternatives", f"cannot carry a {mimetype} alternative (one text/html only)")]
            )
        html = _text(content)
    if html is not None and not text:
        text = None  # Django also leaves an empty body out of the alternatives
    return text, html


def _attachment(item: Any) -> dict[str, str]:
    if isinstance(item, MIMEBase):
        return _mime_attachment(item)
    filename, content, mimetype = item
    content_type = str(
        mimetype or (filename and mimetypes.guess_type(filename)[0]) or DEFAULT_MIME_TYPE
    )
    if content_type == "message/rfc822":
        payload = _message_bytes(content)
    else:
        payload = content if isinstance(content, bytes) else str(content).encode()
    return _encoded(filename, content_type, payload)


def _mime_attachment(part: MIMEBase) -> dict[str, str]:
    content_type = part.get_content_type()
    if content_type == "message/rfc822":
        payload = _message_bytes(part.get_payload(0))
    elif part.is_multipart():
        raise InvalidJobError(
            [("attachments", f"cannot carry a {content_type} attachment (nested multipart)")]
        )
    elif part.get("Content-ID"):
        # Inline parts (cid: images) would arrive as plain attachments and break the html.
        raise InvalidJobError([("attachments", "cannot carry inline parts with a Content-ID")])
    else:
        decoded = part.get_payload(decode=True)
        payload = decoded if isinstance(decoded, bytes) else b""
        charset = part.get_content_charset()
        if part.get_content_maintype() == "text" and charset and charset.lower() != "utf-8":
            # The job carries no charset: re-encode text parts so readers get UTF-8 right.
            try:
                payload = payload.decode(charset).encode("utf-8")
            except (LookupError, UnicodeDecodeError) as exc:
                raise InvalidJobError([("attachments", f"text not in {charset}")]) from exc
    return _encoded(part.get_filename(), content_type, payload)


def _message_bytes(content: Any) -> bytes:
    """An attached email as bytes, from a Django message, an ``email`` message or text."""
    if isinstance(content, DjangoEmailMessage):
        content = content.message()
    if isinstance(content, Message):
        return content.as_bytes()
    return content if isinstance(content, bytes) else str(content).encode()


def _encoded(filename: Any, content_type: str, payload: bytes) -> dict[str, str]:
    extension = mimetypes.guess_extension(content_type) or ""
    name = str(filename) if filename else f"attachment{extension}"
    return {
        "filename": name,
        "content_type": content_type,
        "content_base64": base64.b64encode(payload).decode("ascii"),
    }
