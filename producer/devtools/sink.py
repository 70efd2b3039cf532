"""A local SMTP sink (aiosmtpd): accepts, records and counts mail; optionally answers scripted
replies. ``mailfleet sink`` and ``mailfleet demo`` run it; tests use it as the relay."""

from __future__ import annotations

import mailbox
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from types import TracebackType
from typing import Any

from aiosmtpd.controller import Controller

from mailfleet.shared.names import JOB_ID_HEADER

# Given a recipient (or, for DATA, all accepted recipients), return an SMTP reply such as
# "451 4.7.1 try later" to refuse, or None to accept.
RcptReply = Callable[[str], str | None]
DataReply = Callable[[list[str]], str | None]


@dataclass(frozen=True)
class ReceivedMessage:
    """One accepted message as the relay saw it."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    received_at: float = field(default_factory=time.time)
    peer: str = ""  # the client's address, as the relay saw it

    def parsed(self) -> Message:
        return message_from_bytes(self.data)

    @property
    def job_id(self) -> str | None:
        value = self.parsed().get(JOB_ID_HEADER)
        return None if value is None else str(value)


class _Handler:
    def __init__(self, sink: SmtpSink) -> None:
        self._sink = sink

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        if self._sink.pipelining:  # aiosmtpd reads pipelined commands fine; say so
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        reply = self._sink.rcpt_reply(address) if self._sink.rcpt_reply else None
        if reply is not None and not reply.startswith("2"):
            return reply
        envelope.rcpt_tos.append(address)
        return reply or "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        recipients = list(envelope.rcpt_tos)
        reply = self._sink.data_reply(recipients) if self._sink.data_reply else None
        if reply is not None:
            return reply
        data = envelope.original_content or envelope.content
        peer = str(session.peer[0]) if session.peer else ""
        self._sink.record(
            ReceivedMessage(envelope.mail_from, tuple(recipients), bytes(data), peer=peer)
        )
        return "250 2.0.0 Message accepted"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


class SmtpSink:
    """An in-process SMTP server on ``host:port`` (a free port when ``port`` is 0)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        maildir: Path | None = None,
        rcpt_reply: RcptReply | None = None,
        data_reply: DataReply | None = None,
        keep_messages: bool = True,
        pipelining: bool = False,
        **smtp_options: Any,
    ) -> None:
        """``smtp_options`` go to aiosmtpd's SMTP server (``tls_context``,
        ``require_starttls``, ``authenticator``, ``auth_require_tls`` ...)."""
        self.host = host
        self.port = port or free_port(host)
        self.rcpt_reply = rcpt_reply
        self.pipelining = pipelining
        self.data_reply = data_reply
        self._keep = keep_messages
        self._maildir = mailbox.Maildir(maildir) if maildir else None
        self._messages: list[ReceivedMessage] = []
        self._count = 0
        self._changed = threading.Condition()
        self._controller = Controller(_Handler(self), hostname=host, port=self.port, **smtp_options)

    @property
    def url(self) -> str:
        return f"smtp://{self.host}:{self.port}"

    def start(self) -> SmtpSink:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def record(self, message: ReceivedMessage) -> None:
        if self._maildir is not None:
            self._maildir.add(message.data)
        with self._changed:
            self._count += 1
            if self._keep:
                self._messages.append(message)
            self._changed.notify_all()

    @property
    def count(self) -> int:
        with self._changed:
            return self._count

    @property
    def messages(self) -> list[ReceivedMessage]:
        with self._changed:
            return list(self._messages)

    def wait_for(self, count: int, timeout: float) -> bool:
        """Wait until at least ``count`` messages arrived; False if ``timeout`` passed first."""
        with self._changed:
            return self._changed.wait_for(lambda: self._count >= count, timeout=timeout)
