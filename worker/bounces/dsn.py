"""Delivery status notifications (RFC 3464), read only from their message/delivery-status part.

The returned original message is never scanned for addresses: the quoted text of a bounce
holds addresses of other people (To:, Cc:, signatures) that were never the failed recipient.
"""

from __future__ import annotations

import re
from email.message import Message

from mailfleet.worker.bounces.fields import address, text, untyped
from mailfleet.worker.bounces.model import RecipientResult

_STATUS = re.compile(r"([245])\.\d{1,3}\.\d{1,3}")  # RFC 3463 §2
_ACTIONS = frozenset({"failed", "delayed", "delivered", "relayed", "expanded"})


def status_blocks(part: Message) -> list[Message]:
    """The field blocks of a message/delivery-status part, per-message block first.

    Python's parser turns the body of this type into one Message per blank-line block.
    """
    payload = part.get_payload()
    if not isinstance(payload, list):
        return []
    return [block for block in payload if isinstance(block, Message)]


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
