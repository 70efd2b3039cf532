"""Classifying SMTP replies (RFC 5321 basic code, RFC 3463 enhanced code when present).

Pure functions, table-tested. The enhanced code wins over the basic one, and a few texts
that real providers send win over both (a 5xx that says "try again later" is transient).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

_ENHANCED = re.compile(r"^\s*([245])\.(\d{1,3})\.(\d{1,3})\b")
_THROTTLE_TEXT = re.compile(
    r"rate limit|too many (messages|connections|recipients)|frequency limit|throttl"
    r"|try again later|temporarily deferred|please slow down",
    re.IGNORECASE,
)
_BAD_MAILBOX = {(1, 1), (1, 2), (1, 3), (1, 6), (1, 10), (2, 1)}  # no such user/domain, disabled
_BAD_DOMAIN_TEXT = re.compile(r"domain (does not exist|not found)|no such domain|NXDOMAIN", re.I)


class Outcome(StrEnum):
    DELIVERED = "delivered"
    TRANSIENT = "transient"
    THROTTLED = "throttled"
    PERMANENT = "permanent"


@dataclass(frozen=True)
class SmtpReply:
    """A reply from the relay; ``code`` 0 stands for no reply (connection refused, timeout)."""

    code: int
    text: str

    @property
    def enhanced(self) -> tuple[int, int, int] | None:
        match = _ENHANCED.match(self.text)
        if match is None:
            return None
        klass, subject, detail = (int(part) for part in match.groups())
        return klass, subject, detail

    def __str__(self) -> str:
        return f"{self.code} {self.text}".strip() if self.code else self.text


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    bad_mailbox: bool = False  # permanent and about the address itself: suppress it


def classify(reply: SmtpReply) -> Verdict:
    """What to do with a recipient after ``reply``."""
    if reply.code == 0:
        return Verdict(Outcome.TRANSIENT)
    enhanced = reply.enhanced
    klass = enhanced[0] if enhanced else reply.code // 100
    if klass == 2:
        return Verdict(Outcome.DELIVERED)
    throttled = reply.code == 421 or (enhanced is not None and enhanced[1] == 7 and klass == 4)
    if _THROTTLE_TEXT.search(reply.text):
        return Verdict(Outcome.THROTTLED)
    if klass == 4 or reply.code // 100 == 4:
        return Verdict(Outcome.THROTTLED if throttled else Outcome.TRANSIENT)
    if klass == 5:
        bad = enhanced is not None and (enhanced[1], enhanced[2]) in _BAD_MAILBOX
        if enhanced is None and reply.code in (550, 551, 553):
            bad = bad or _BAD_DOMAIN_TEXT.search(reply.text) is not None
        return Verdict(Outcome.PERMANENT, bad_mailbox=bad)
    return Verdict(Outcome.TRANSIENT)  # 1xx/3xx out of place: treat as a protocol hiccup
