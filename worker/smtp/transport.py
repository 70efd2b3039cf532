"""SMTP delivery behind a one-method seam.

:class:`Transport` is what the pipeline calls; :class:`SmtpTransport` keeps one open
connection per relay and reuses it across jobs (each sender thread owns its own transport,
so no locking). smtplib's exceptions become a :class:`SendResult` here at the boundary: the
caller sees replies per recipient, and whether the relay itself failed (for failover and the
circuit breaker), never an smtplib type.
"""

from __future__ import annotations

import smtplib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from pydantic import SecretStr

from mailfleet.shared.relays import Relay
from mailfleet.worker.smtp.connect import Connector
from mailfleet.worker.smtp.pipelining import (
    Opened,
    can_pipeline,
    commands,
    read_accepted,
    read_opening,
    send,
    write_message,
)
from mailfleet.worker.smtp.replies import SmtpReply

IDLE_CHECK = 5.0  # seconds a pooled connection may idle before it is checked with NOOP
SERVICE_NOT_AVAILABLE = 421


@dataclass(frozen=True)
class Envelope:
    sender: str
    recipients: list[str]
    data: bytes
    # One transaction per part instead (a return path per recipient, see worker/envelopes.py).
    parts: tuple[Envelope, ...] = ()


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
    def send(self, envelope: Envelope, relay: Relay, then: Envelope | None = None) -> SendResult:
        """Send ``envelope``; with ``then``, also open that email's transaction on the way."""
        ...

    def opened(self, envelope: Envelope) -> Relay | None:
        """The relay on which ``envelope``'s transaction was opened by a chained send."""
        ...

    def chains(self, relay: Relay) -> bool:
        """Whether a send through ``relay`` can chain the next email (PIPELINING)."""
        ...

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
        self._connector = Connector(timeout, ca_file, username, password, local_hostname)
        self._connections: dict[Relay, smtplib.SMTP] = {}
        self._last_used: dict[Relay, float] = {}
        # A chained email's transaction, opened behind the previous email: what the server
        # answered to its commands (or how it refused them). The server now waits for its
        # message, so nothing else may be written on that connection but that message.
        self._chained: dict[Relay, tuple[Envelope, Opened | smtplib.SMTPException]] = {}

    def warm_up(self, relays: list[Relay]) -> None:
        """Open a connection to each relay now, so the first job does not pay for it (and
        rate-limited sends reach the relay as evenly spaced as their tokens)."""
        for relay in relays:
            try:
                self._connection(relay)
            except _RelayFailure:
                continue  # the first send through it will report the failure

    def close(self) -> None:
        for relay in list(self._chained):
            self._drop(relay)  # mid-transaction: a QUIT would be read as message text
        for connection in self._connections.values():
            try:
                connection.quit()
            except (smtplib.SMTPException, OSError):
                connection.close()
        self._connections.clear()

    def chains(self, relay: Relay) -> bool:
        connection = self._connections.get(relay)
        return connection is not None and bool(connection.has_extn("pipelining"))

    def opened(self, envelope: Envelope) -> Relay | None:
        for relay, (chained, _) in self._chained.items():
            if chained is envelope:
                return relay
        return None

    def send(self, envelope: Envelope, relay: Relay, then: Envelope | None = None) -> SendResult:
        if envelope.parts:
            return self._send_parts(envelope, relay)
        result = SendResult(relay=relay.name)
        chained = self._chained.pop(relay, None)
        if chained is not None and chained[0] is not envelope:
            # Opened for an email that went elsewhere: only closing abandons it safely (an
            # unfinished message is discarded by the server, never delivered).
            self._drop(relay)
            chained = None
        try:
            if chained is not None:
                refused = self._finish(self._connections[relay], relay, envelope, chained, then)
            else:
                refused = self._transaction(self._connection(relay), relay, envelope, then)
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
            reply = _no_reply(exc, self._connector.timeout)
            return _all_refused(result, envelope, reply, relay_failed=True)
        self._last_used[relay] = time.monotonic()
        # smtplib counts only 250/251 as accepted; any 2xx (e.g. 252) means the relay took it.
        result.refused = {
            rcpt: _reply(code, text)
            for rcpt, (code, text) in refused.items()
            if not 200 <= code < 300
        }
        result.accepted = [rcpt for rcpt in envelope.recipients if rcpt not in result.refused]
        return result

    def _send_parts(self, envelope: Envelope, relay: Relay) -> SendResult:
        """Each part in turn, on one connection, without chaining the next email. Once a
        part was accepted, a relay failure is no longer the relay's: trying the envelope on
        another relay would send the accepted parts twice, so the rest are retried later."""
        result = SendResult(relay=relay.name)
        for index, part in enumerate(envelope.parts):
            sent = self.send(part, relay)
            result.accepted += sent.accepted
            result.refused.update(sent.refused)
            if sent.relay_failed:
                reply = next(iter(sent.refused.values()))
                for later in envelope.parts[index + 1 :]:
                    result.refused.update(dict.fromkeys(later.recipients, reply))
                result.relay_failed = not result.accepted
                break
        return result

    def _transaction(
        self, connection: smtplib.SMTP, relay: Relay, envelope: Envelope, then: Envelope | None
    ) -> dict[str, tuple[int, bytes]]:
        sender, recipients = envelope.sender, envelope.recipients
        if not can_pipeline(connection, sender, recipients):
            return connection.sendmail(sender, recipients, envelope.data)
        send(connection, commands(sender, recipients))
        opened = read_opening(connection, sender, recipients)
        return self._finish(connection, relay, envelope, (envelope, opened), then)

    def _finish(
        self,
        connection: smtplib.SMTP,
        relay: Relay,
        envelope: Envelope,
        chained: tuple[Envelope, Opened | smtplib.SMTPException],
        then: Envelope | None,
    ) -> dict[str, tuple[int, bytes]]:
        """Write the message of an opened transaction (with ``then``'s commands behind it
        when it can be chained), read its reply, then the replies to ``then``'s commands."""
        opened = chained[1]
        if isinstance(opened, smtplib.SMTPException):
            raise opened  # how the server refused this email's commands, read earlier
        chain = then is not None and can_pipeline(connection, then.sender, then.recipients)
        following = commands(then.sender, then.recipients) if then and chain else b""
        write_message(connection, envelope.data, following)
        read_accepted(connection, chained=chain)
        if then is not None and chain:
            try:
                self._chained[relay] = (
                    then,
                    read_opening(connection, then.sender, then.recipients),
                )
            except (smtplib.SMTPSenderRefused, smtplib.SMTPRecipientsRefused) as exc:
                self._chained[relay] = (then, exc)  # its own send reports it
            except (smtplib.SMTPException, OSError):
                self._drop(relay)  # ``then`` was not opened; it is sent afresh
        return opened.refused

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
                connection = self._connector.open(relay)
            except smtplib.SMTPAuthenticationError as exc:
                raise _RelayFailure(
                    SmtpReply(0, f"authentication failed: {exc.smtp_code}")
                ) from exc
            except (smtplib.SMTPException, OSError) as exc:  # refused, TLS, no STARTTLS ...
                raise _RelayFailure(_no_reply(exc)) from exc
            self._connections[relay] = connection
            self._last_used[relay] = time.monotonic()
        return connection

    def _drop(self, relay: Relay) -> None:
        self._chained.pop(relay, None)  # a transaction opened on it goes with it
        connection = self._connections.pop(relay, None)
        if connection is not None:
            connection.close()


def _reply(code: int, raw: bytes | str) -> SmtpReply:
    return SmtpReply(code, raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw)


def _no_reply(exc: BaseException, timeout: float | None = None) -> SmtpReply:
    # smtplib turns a write that timed out into "Server not connected"; say what happened.
    if timeout is not None and any(
        isinstance(cause, TimeoutError) for cause in (exc, exc.__context__)
    ):
        return SmtpReply(0, f"timed out: the relay did not answer within {timeout:g}s")
    return SmtpReply(0, f"{type(exc).__name__}: {exc}")


def _all_refused(
    result: SendResult, envelope: Envelope, reply: SmtpReply, *, relay_failed: bool
) -> SendResult:
    result.refused = dict.fromkeys(envelope.recipients, reply)
    result.relay_failed = relay_failed
    return result
