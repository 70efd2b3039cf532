"""Recognising auto-replies (vacation, out of office) so they are not taken for bounces.

The rules are deliberately few:

* ``Auto-Submitted: auto-replied`` (RFC 3834 §5);
* an ``X-Autoreply`` or ``X-Autorespond`` field, whatever its value (common in practice);
* ``Precedence: auto_reply``;
* ``Precedence: bulk`` or ``junk`` with an out-of-office style Subject.

Mail from MAILER-DAEMON or postmaster, or with ``X-Failed-Recipients``, is never an auto-reply
even when it says ``Auto-Submitted: auto-replied`` (classic Exim and Postfix text bounces do):
it is a bounce that is not an RFC 3464 report, which we do not read.
"""

from __future__ import annotations

import re
from email.message import Message

from mailfleet.worker.bounces.fields import address, text

_AWAY = re.compile(
    r"out of (the )?office|automatic reply|auto[- ]?reply|autoreply|vacation|abwesen|absence",
    re.IGNORECASE,
)
_DAEMONS = frozenset({"mailer-daemon", "postmaster"})


def is_auto_reply(msg: Message) -> bool:
    """``msg`` is an automatic reply to a message, by the rules of this module's docstring."""
    if text(msg, "Auto-Submitted").lower().startswith("auto-replied"):
        return True
    if msg.get("X-Autoreply") is not None or msg.get("X-Autorespond") is not None:
        return True
    precedence = text(msg, "Precedence").lower()
    if precedence == "auto_reply":
        return True
    return precedence in {"bulk", "junk"} and _AWAY.search(text(msg, "Subject")) is not None


def is_from_daemon(msg: Message) -> bool:
    """``msg`` comes from mail delivery software: a bounce, though perhaps not a DSN."""
    if msg.get("X-Failed-Recipients") is not None:
        return True
    sender = address(text(msg, "From")) or ""
    return sender.rpartition("@")[0].lower() in _DAEMONS
