"""Reading header fields of reports tolerantly: typed values, folded text, returned originals."""

from __future__ import annotations

import re
from email.message import Message
from email.parser import HeaderParser
from email.policy import compat32

_MAX_FIELD = 1000  # a Diagnostic-Code can quote a whole SMTP dialogue; keep what is useful
_ANGLE = re.compile(r"<([^<>]*)>")
# RFC 3462 text/rfc822-headers; RFC 6533 message/global and message/global-headers.
_RETURNED = frozenset(
    {"message/rfc822", "text/rfc822-headers", "message/global", "message/global-headers"}
)


def text(msg: Message, name: str) -> str:
    """The unfolded value of field ``name``, "" if absent; 8-bit bytes stay escaped (compat32)."""
    value = msg.get(name)
    if value is None:
        return ""
    return " ".join(str(value).split())[:_MAX_FIELD]


def untyped(value: str) -> str:
    """``value`` without its ``type;`` prefix (RFC 3464 §2.1.2: address-, diagnostic-, mta-)."""
    kind, sep, rest = value.partition(";")
    if sep and " " not in kind.strip():
        return rest.strip()
    return value.strip()


def address(value: str) -> str | None:
    """The bare address in ``value`` (``rfc822;`` and ``<>`` removed), its domain lower-cased."""
    value = untyped(value)
    match = _ANGLE.search(value)
    if match:
        value = match.group(1)
    value = value.strip().strip('"').strip()
    local, at, domain = value.rpartition("@")
    if not at or not local or not domain or any(c.isspace() for c in value):
        return None
    return f"{local}@{domain.lower()}"


def returned_headers(part: Message) -> Message | None:
    """The headers of the original returned in ``part``: message/rfc822 or text/rfc822-headers."""
    if part.get_content_type() not in _RETURNED:
        return None
    payload = part.get_payload()  # message/* parts are parsed as one embedded message
    if isinstance(payload, list) and payload and isinstance(payload[0], Message):
        return payload[0]
    if isinstance(payload, str):
        return HeaderParser(policy=compat32).parsestr(payload, headersonly=True)
    return None


def original_of(parts: list[Message]) -> Message | None:
    """The first returned original (or its headers) among the parts of a report."""
    for part in parts:
        found = returned_headers(part)
        if found is not None:
            return found
    return None


def message_id(msg: Message) -> str | None:
    """The Message-ID of ``msg`` without angle brackets, None if absent."""
    value = text(msg, "Message-ID").strip("<>").strip()
    return value or None


def verp_token(envelope_to: str | None) -> str | None:
    """``token`` from ``local+token@domain`` (the envelope recipient of the report)."""
    if not envelope_to:
        return None
    found = address(envelope_to)
    if found is None:
        return None
    local = found.rpartition("@")[0]
    token = local.partition("+")[2]
    return token or None
