"""SMTP delivery behind a one-method seam.

:class:`Transport` is what the pipeline calls; :class:`SmtpTransport` keeps one open
connection per relay and reuses it across jobs (each sender thread owns its own transport,
so no locking). smtplib's exceptions become a :class:`SendResult` here at the boundary: the
caller sees replies per recipient, never an smtplib type.
"""

from __future__ import annotations

import random
import smtplib
import ssl
import time
from dataclasses import dataclass, field
from typing import Protocol

from mailfleet.shared.relays import Relay
from mailfleet.worker.replies import SmtpReply

IDLE_CHECK = 5.0  # seconds a pooled connection may idle before it is checked with NOOP


@dataclass(frozen=True)
class Envelope:
    sender: str
    recipients: list[str]
    data: bytes


@dataclass
class SendResult:
    """Per-recipient replies: ``accepted`` got the message; ``refused`` maps the others."""

    relay: str
    accepted: list[str] = field(default_factory=list)
    refused: dict[str, SmtpReply] = field(default_factory=dict)


class Transport(Protocol):
    def send(self, envelope: Envelope) -> SendResult: ...

    def warm_up(self) -> None: ...

    def close(self) -> None: ...


class SmtpTransport:
    """Pooled smtplib connections, one per relay, opened on first use and reused."""

    def __init__(self, relays: list[Relay], timeout: float, local_hostname: str | None = None):
        self._relays = relays
        self._weights = [relay.weight for relay in relays]
        self._timeout = timeout
        self._local_hostname = local_hostname
        self._connections: dict[Relay, smtplib.SMTP] = {}
        self._last_used: dict[Relay, float] = {}

    def warm_up(self) -> None:
        """Open a connection to every relay now, so the first job does not pay for it (and
        rate-limited sends reach the relay as evenly spaced as their tokens)."""
        for relay in self._relays:
            if relay not in self._connections:
                try:
                    self._connections[relay] = self._open(relay)
                    self._last_used[relay] = time.monotonic()
                except (smtplib.SMTPException, OSError):
                    continue  # the first send will retry and report it

    def close(self) -> None:
        for connection in self._connections.values():
            try:
                connection.quit()
            except (smtplib.SMTPException, OSError):
                connection.close()
        self._connections.clear()

    def send(self, envelope: Envelope) -> SendResult:
        relay = random.choices(self._relays, self._weights)[0]
        result = SendResult(relay=relay.name)
        try:
            refused = self._send_reusing(relay, envelope)
        except smtplib.SMTPRecipientsRefused as exc:
            result.refused = {
                rcpt: SmtpReply(code, _text(text)) for rcpt, (code, text) in exc.recipients.items()
            }
            return result
        except smtplib.SMTPResponseException as exc:  # sender refused, data refused, 421 ...
            self._drop(relay)
            return _all_refused(result, envelope, SmtpReply(exc.smtp_code, _text(exc.smtp_error)))
        except (smtplib.SMTPException, OSError) as exc:  # refused, dropped, timed out
            self._drop(relay)
            return _all_refused(result, envelope, SmtpReply(0, f"{type(exc).__name__}: {exc}"))
        result.refused = {
            rcpt: SmtpReply(code, _text(text)) for rcpt, (code, text) in refused.items()
        }
        result.accepted = [rcpt for rcpt in envelope.recipients if rcpt not in result.refused]
        return result

    def _send_reusing(self, relay: Relay, envelope: Envelope) -> dict[str, tuple[int, bytes]]:
        connection = self._connections.get(relay)
        if connection is not None and time.monotonic() - self._last_used[relay] > IDLE_CHECK:
            # Relays close idle connections. Find out with NOOP *before* the transaction: a
            # disconnect noticed after DATA could mean the message was already accepted.
            try:
                connection.noop()
            except (smtplib.SMTPException, OSError):
                self._drop(relay)
                connection = None
        if connection is None:
            connection = self._open(relay)
            self._connections[relay] = connection
        self._last_used[relay] = time.monotonic()
        return connection.sendmail(envelope.sender, envelope.recipients, envelope.data)

    def _open(self, relay: Relay) -> smtplib.SMTP:
        context = ssl.create_default_context()
        connection: smtplib.SMTP
        if relay.implicit_tls:
            connection = smtplib.SMTP_SSL(
                relay.host, relay.port, self._local_hostname, timeout=self._timeout, context=context
            )
        else:
            connection = smtplib.SMTP(
                relay.host, relay.port, self._local_hostname, timeout=self._timeout
            )
        connection.ehlo()
        if relay.starttls:
            connection.starttls(context=context)
            connection.ehlo()
        if relay.username and relay.password is not None:
            connection.login(relay.username, relay.password.get_secret_value())
        return connection

    def _drop(self, relay: Relay) -> None:
        connection = self._connections.pop(relay, None)
        if connection is not None:
            connection.close()


def _text(raw: bytes | str) -> str:
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw


def _all_refused(result: SendResult, envelope: Envelope, reply: SmtpReply) -> SendResult:
    result.refused = dict.fromkeys(envelope.recipients, reply)
    return result
