"""Delivery status notifications (RFC 3464), read only from their message/delivery-status part.

The returned original message is never scanned for addresses: the quoted text of a bounce
holds addresses of other people (To:, Cc:, signatures) that were never the failed recipient.
"""

from __future__ import annotations

import re
from email.message import Message
from email.parser import HeaderParser
from email.policy import compat32

from mailfleet.worker.bounces.fields import address, text, untyped
from mailfleet.worker.bounces.model import RecipientResult

_STATUS = re.compile(r"([245])\.\d{1,3}\.\d{1,3}")  # RFC 3463 §2
_BLANK = re.compile(r"\r?\n[ \t]*\r?\n")
_ACTIONS = frozenset({"failed", "delayed", "delivered", "relayed", "expanded"})


STATUS_TYPES = ("message/delivery-status", "message/global-delivery-status")  # RFC 6533


def status_blocks(part: Message) -> list[Message]:
    """The field blocks of a delivery-status part, per-message block first.

    Python's parser turns the body of message/delivery-status into one Message per blank-line
    block, but reads message/global-delivery-status as one embedded message whose body holds
    the per-recipient blocks (UTF-8), so those are split here.
    """
    payload = part.get_payload()
    if not isinstance(payload, list):
        return []
    blocks = [block for block in payload if isinstance(block, Message)]
    if part.get_content_type() != STATUS_TYPES[1] or len(blocks) != 1:
        return blocks
    body = blocks[0].get_payload(decode=True)  # the raw bytes: without decode, 8-bit is lost
    if not isinstance(body, bytes):
        return blocks
    rest = body.decode("utf-8", "replace")
    parser = HeaderParser(policy=compat32)
    return blocks + [parser.parsestr(chunk) for chunk in _BLANK.split(rest) if chunk.strip()]


def recipients(part: Message) -> tuple[RecipientResult, ...]:
    """One result per per-recipient block (RFC 3464 §2.3) that names an address and an action."""
    results: list[RecipientResult] = []
    for block in status_blocks(part):
        result = _recipient(block)
        if result is not None:
            results.append(result)
    return tuple(results)


def _recipient(block: Message) -> RecipientResult | None:
    # Final-Recipient is required; Original-Recipient is the fallback for broken reporters.
    rcpt = address(text(block, "Final-Recipient")) or address(text(block, "Original-Recipient"))
    words = text(block, "Action").lower().split()
    action = words[0] if words else ""
    if rcpt is None or action not in _ACTIONS:
        return None  # the per-message block (Reporting-MTA, ...) or a block we cannot use
    match = _STATUS.match(text(block, "Status"))
    status = match.group(0) if match else ""
    remote = untyped(text(block, "Remote-MTA"))
    return RecipientResult(
        recipient=rcpt,
        action=action,
        status=status,
        hard=status.startswith("5") or action == "failed",
        diagnostic=untyped(text(block, "Diagnostic-Code")),
        remote_mta=remote or None,
    )
