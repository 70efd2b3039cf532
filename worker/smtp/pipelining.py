"""SMTP transactions in few round trips on relays that offer PIPELINING (RFC 2920).

smtplib's ``sendmail`` waits for the reply to MAIL, to each RCPT and to DATA before the
next command: 3 + recipients round trips. Here MAIL, every RCPT and DATA go out in one
write and their replies are read back in order, then the message follows. RFC 2920 also
lets the end of one message and the next transaction's commands share a write, so a
sender with several emails for one relay *chains* them: one round trip per email. Failures
raise the same smtplib exceptions ``sendmail`` would, so callers handle both alike.
"""

from __future__ import annotations

import re
import smtplib
from dataclasses import dataclass

from mailfleet.shared.socket_write import send_all

_LEADING_DOT = re.compile(rb"(?m)^\.")
_CLOSING = 421  # the server is closing the connection
_START_DATA = 354

Refused = dict[str, tuple[int, bytes]]


def can_pipeline(connection: smtplib.SMTP, sender: str, recipients: list[str]) -> bool:
    """PIPELINING offered, and plain ASCII addresses (SMTPUTF8 stays with smtplib)."""
    return bool(connection.has_extn("pipelining")) and all(
        address.isascii() for address in (sender, *recipients)
    )


def commands(sender: str, recipients: list[str]) -> bytes:
    """MAIL, every RCPT and DATA: the opening of a transaction, as one write."""
    lines = [f"MAIL FROM:<{sender}>", *(f"RCPT TO:<{rcpt}>" for rcpt in recipients), "DATA"]
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


@dataclass(frozen=True)
class Opened:
    """A transaction whose commands were answered: the server now waits for the message."""

    refused: Refused


def read_opening(connection: smtplib.SMTP, sender: str, recipients: list[str]) -> Opened:
    """Read the replies to :func:`commands`; raise as ``sendmail`` would when the server
    will not take the message (the connection is then reset or closed)."""
    mail_code, mail_reply = connection.getreply()
    refused: Refused = {}
    for rcpt in recipients:
        code, reply = connection.getreply()
        if not 200 <= code < 300:  # 250, 251, and the odd 252 the relay takes all the same
            refused[rcpt] = (code, reply)
    data_code, data_reply = connection.getreply()
    codes = [mail_code, *(code for code, _ in refused.values()), data_code]
    if data_code == _START_DATA and (mail_code != 250 or len(refused) == len(recipients)):
        # The server took DATA without a valid transaction: end it empty, then reset.
        send(connection, b".\r\n")
        codes.append(connection.getreply()[0])
    if mail_code != 250:
        _end_transaction(connection, codes)
        raise smtplib.SMTPSenderRefused(mail_code, mail_reply, sender)
    if len(refused) == len(recipients) or _CLOSING in codes:
        _end_transaction(connection, codes)
        raise smtplib.SMTPRecipientsRefused(refused)
    if data_code != _START_DATA:
        _end_transaction(connection, codes)
        raise smtplib.SMTPDataError(data_code, data_reply)
    return Opened(refused)


def write_message(connection: smtplib.SMTP, data: bytes, then: bytes = b"") -> None:
    """The message, dot-stuffed and ended, followed in the same write by ``then``."""
    body = _LEADING_DOT.sub(b"..", data)
    if not body.endswith(b"\r\n"):
        body += b"\r\n"
    send(connection, body + b".\r\n" + then)


def read_accepted(connection: smtplib.SMTP, *, chained: bool) -> None:
    """The reply to the message: return on 250, else raise. With a chained transaction's
    commands already written behind it, a refusal closes the connection instead of
    resetting it, since those commands' replies would come before RSET's."""
    code, reply = connection.getreply()
    if code != 250:
        if chained:
            connection.close()
        else:
            _end_transaction(connection, [code])
        raise smtplib.SMTPDataError(code, reply)


def send(connection: smtplib.SMTP, data: bytes) -> None:
    """``connection.send(data)`` (the same errors), without a poll() first when the socket
    can take the data at once (``shared/socket_write.py``)."""
    if not connection.sock:
        raise smtplib.SMTPServerDisconnected("please run connect() first")
    try:
        send_all(connection.sock, data)
    except OSError:
        connection.close()
        raise smtplib.SMTPServerDisconnected("Server not connected") from None


def _end_transaction(connection: smtplib.SMTP, codes: list[int]) -> None:
    """RSET for the next transaction, or close if the server said it is closing (421)."""
    if _CLOSING in codes:
        connection.close()
    else:
        try:
            connection.rset()
        except smtplib.SMTPServerDisconnected:
            connection.close()
