"""SMTP delivery behind a one-method seam.

:class:`Transport` is what the pipeline calls; :class:`SmtpTransport` keeps one open
connection per relay and reuses it across jobs (each sender thread owns its own transport,
so no locking). smtplib's exceptions become a :class:`SendResult` here at the boundary: the
caller sees replies per recipient, and whether the relay itself failed (for failover and the
circuit breaker), never an smtplib type.
"""

from __future__ import annotations

import smtplib
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from pydantic import SecretStr

from mailfleet.shared.relays import Relay
from mailfleet.worker.replies import SmtpReply
from mailfleet.worker.smtp_pipelining import can_pipeline, send_pipelined

IDLE_CHECK = 5.0  # seconds a pooled connection may idle before it is checked with NOOP
SERVICE_NOT_AVAILABLE = 421


@dataclass(frozen=True)
class Envelope:
    sender: str
    recipients: list[str]
    data: bytes


@dataclass
class SendResult:
    """Per-recipient replies: ``accepted`` got the message; ``refused`` maps the others.

    ``relay_failed`` means the relay, not the recipients, was the problem (no connection,
    TLS or AUTH failure, timeout, 421): another relay may do better.
    """

    relay: str
    accepted: list[str] = field(default_factory=list)
    refused: dict[str, SmtpReply] = field(default_factory=dict)
    relay_failed: bool = False


class Transport(Protocol):
    def send(self, envelope: Envelope, relay: Relay) -> SendResult: ...

    def warm_up(self, relays: list[Relay]) -> None: ...

    def close(self) -> None: ...


class _RelayFailure(Exception):
    def __init__(self, reply: SmtpReply) -> None:
        self.reply = reply


class SmtpTransport:
    """Pooled smtplib connections, one per relay, opened on first use and reused."""

    def __init__(
        self,
        timeout: float,
        *,
        ca_file: Path | None = None,
        username: str | None = None,
        password: SecretStr | None = None,
        local_hostname: str | None = None,
    ) -> None:
        self._timeout = timeout
        self._tls = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
        self._username = username
        self._password = password
        self._local_hostname = local_hostname
        self._connections: dict[Relay, smtplib.SMTP] = {}
        self._last_used: dict[Relay, float] = {}

    def warm_up(self, relays: list[Relay]) -> None:
        """Open a connection to each relay now, so the first job does not pay for it (and
        rate-limited sends reach the relay as evenly spaced as their tokens)."""
        for relay in relays:
            try:
                self._connection(relay)
            except _RelayFailure:
                continue  # the first send through it will report the failure

    def close(self) -> None:
        for connection in self._connections.values():
            try:
                connection.quit()
            except (smtplib.SMTPException, OSError):
                connection.close()
        self._connections.clear()

    def send(self, envelope: Envelope, relay: Relay) -> SendResult:
        result = SendResult(relay=relay.name)
        try:
            refused = self._transaction(self._connection(relay), envelope)
        except _RelayFailure as failure:
            return _all_refused(result, envelope, failure.reply, relay_failed=True)
        except smtplib.SMTPRecipientsRefused as exc:
            # Replies to RCPT are about the recipients (a 421 there is a domain pushing
            # back), not the relay: no failover, no breaker.
            result.refused = {
                rcpt: _reply(code, text) for rcpt, (code, text) in exc.recipients.items()
            }
            # After a 421 the server closed before the remaining recipients were tried:
            # they are not accepted, so they must be retried, never forgotten.
            untried = SmtpReply(SERVICE_NOT_AVAILABLE, "closed before this recipient was tried")
            for rcpt in envelope.recipients:
                result.refused.setdefault(rcpt, untried)
            return result
        except smtplib.SMTPResponseException as exc:  # sender or data refused, 421 ...
            self._drop(relay)
            reply = _reply(exc.smtp_code, exc.smtp_error)
            return _all_refused(
                result, envelope, reply, relay_failed=exc.smtp_code == SERVICE_NOT_AVAILABLE
            )
        except (smtplib.SMTPException, OSError) as exc:  # dropped, timed out
            self._drop(relay)
            return _all_refused(result, envelope, _no_reply(exc), relay_failed=True)
        self._last_used[relay] = time.monotonic()
        # smtplib counts only 250/251 as accepted; any 2xx (e.g. 252) means the relay took it.
        result.refused = {
            rcpt: _reply(code, text)
            for rcpt, (code, text) in refused.items()
            if not 200 <= code < 300
        }
        result.accepted = [rcpt for rcpt in envelope.recipients if rcpt not in result.refused]
        return result

    @staticmethod
    def _transaction(connection: smtplib.SMTP, envelope: Envelope) -> dict[str, tuple[int, bytes]]:
        sender, recipients, data = envelope.sender, envelope.recipients, envelope.data
        if can_pipeline(connection, sender, recipients):
            return send_pipelined(connection, sender, recipients, data)
        return connection.sendmail(sender, recipients, data)

    def _connection(self, relay: Relay) -> smtplib.SMTP:
        connection = self._connections.get(relay)
        if connection is not None and connection.sock is None:
            # smtplib closes the connection itself after a 421 (service closing channel).
            self._drop(relay)
            connection = None
        if connection is not None and time.monotonic() - self._last_used[relay] > IDLE_CHECK:
            # Relays close idle connections. Find out with NOOP *before* the transaction: a
            # disconnect noticed after DATA could mean the message was already accepted.
            try:
                connection.noop()
            except (smtplib.SMTPException, OSError):
                self._drop(relay)
                connection = None
        if connection is None:
            try:
                connection = self._open(relay)
            except smtplib.SMTPAuthenticationError as exc:
                raise _RelayFailure(
                    SmtpReply(0, f"authentication failed: {exc.smtp_code}")
                ) from exc
            except (smtplib.SMTPException, OSError) as exc:  # refused, TLS, no STARTTLS ...
                raise _RelayFailure(_no_reply(exc)) from exc
            self._connections[relay] = connection
            self._last_used[relay] = time.monotonic()
        return connection

    def _open(self, relay: Relay) -> smtplib.SMTP:
        connection: smtplib.SMTP
        if relay.implicit_tls:
            connection = smtplib.SMTP_SSL(
                relay.host,
                relay.port,
                self._local_hostname,
                timeout=self._timeout,
                context=self._tls,
            )
        else:
            connection = smtplib.SMTP(
                relay.host, relay.port, self._local_hostname, timeout=self._timeout
            )
        try:
            connection.ehlo()
            if relay.uses_starttls:
                connection.starttls(context=self._tls)  # raises if the relay does not offer it
                connection.ehlo()
            username = relay.username or self._username
            password = relay.password or self._password
            if username and password is not None:
                connection.login(username, password.get_secret_value())
        except BaseException:
            connection.close()
            raise
        return connection

    def _drop(self, relay: Relay) -> None:
        connection = self._connections.pop(relay, None)
        if connection is not None:
            connection.close()


def _reply(code: int, raw: bytes | str) -> SmtpReply:
    return SmtpReply(code, raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw)


def _no_reply(exc: BaseException) -> SmtpReply:
    return SmtpReply(0, f"{type(exc).__name__}: {exc}")


def _all_refused(
    result: SendResult, envelope: Envelope, reply: SmtpReply, *, relay_failed: bool
) -> SendResult:
    result.refused = dict.fromkeys(envelope.recipients, reply)
    result.relay_failed = relay_failed
    return result
