"""What a parsed report says: the frozen results of ``parse_report`` (RFC 3464, RFC 5965)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["dsn", "complaint", "auto_reply", "ignored"]


@dataclass(frozen=True)
class RecipientResult:
    """One per-recipient block of a ``message/delivery-status`` part (RFC 3464 §2.3)."""

    recipient: str  # bare address, domain lower-cased
    action: str  # failed, delayed, delivered, relayed or expanded
    status: str  # "5.1.1" (RFC 3463), "" if absent or malformed
    hard: bool  # status class 5 or action failed
    diagnostic: str = ""  # Diagnostic-Code without its type ("smtp;"), whitespace collapsed
    remote_mta: str | None = None  # Remote-MTA without its type ("dns;")


@dataclass(frozen=True)
class Report:
    """A bounce, a complaint, an auto-reply, or a message ignored for ``reason``."""

    kind: Kind
    reason: str = ""  # why ignored ("not a report", "unparseable", ...), "auto-reply" for one
    recipients: tuple[RecipientResult, ...] = ()  # DSNs only
    feedback_type: str | None = None  # complaints (and ignored feedback reports)
    original_recipient: str | None = None  # ARF Original-Rcpt-To, None if absent or redacted
    original_message_id: str | None = None  # Message-ID of the returned original headers
    mailfleet_ref: str | None = None  # X-Mailfleet-Ref of the returned original headers
    verp_token: str | None = None  # from the envelope recipient, ``local+token@domain``

    @property
    def hard_recipients(self) -> tuple[str, ...]:
        """The recipients whose delivery failed permanently."""
        return tuple(r.recipient for r in self.recipients if r.hard)
