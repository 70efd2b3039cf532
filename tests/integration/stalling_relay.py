"""A raw-socket SMTP relay that stops answering on purpose, at a chosen stage.

aiosmtpd answers every command it reads, so a relay that hangs is written by hand: the first
``stalls`` connections go silent at ``stage`` (and stop reading), the later ones are served
like an ordinary relay and their messages recorded. Each stalled connection is held open
until the client gives up and closes it, which the relay records: proof that the client
timed out rather than the relay letting go.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from email import message_from_bytes
from enum import StrEnum
from types import TracebackType

from mailfleet.shared.names import JOB_ID_HEADER


class Stage(StrEnum):
    MAIL = "mail"  # no reply to MAIL FROM
    DATA = "data"  # no reply to DATA (no 354)
    BODY = "body"  # reads a part of the message, then stops reading it
    END = "end"  # reads the whole message, stores it, and never sends its 250


_BODY_READ = 64 * 1024  # what a BODY stall reads of the message before it stops
_SMALL_BUFFER = 4096  # a small receive buffer, so a stalled body soon blocks the sender
_SHUTDOWN_POLL = 0.2


@dataclass(frozen=True)
class Stall:
    stage: Stage
    client_closed: bool  # the client hung up while the relay was silent


class StallingRelay:
    """On ``127.0.0.1:port``; ``with StallingRelay(port, Stage.DATA) as relay: ...``."""

    def __init__(
        self,
        port: int,
        stage: Stage,
        *,
        stalls: int = 1,
        hold: float = 0.0,
        on_stall: Callable[[], None] | None = None,
    ) -> None:
        self.port = port
        self.stage = stage
        self._stalls_left = stalls
        self._on_stall = on_stall
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self.stalls: list[Stall] = []
        self.job_ids: list[str] = []  # the messages stored (served, or stored before an END stall)
        self._hold = hold
        # The buffer is set before listen(), so the window offered at the handshake is small.
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _SMALL_BUFFER)
        self._listener.bind(("127.0.0.1", port))
        self._listener.listen()
        self._listener.settimeout(_SHUTDOWN_POLL)
        self._threads: list[threading.Thread] = []

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def __enter__(self) -> StallingRelay:
        thread = threading.Thread(target=self._accept, name="stalling-relay", daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stopping.set()
        for thread in list(self._threads):
            thread.join(10)
        self._listener.close()

    def wait_for_stalls(self, count: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if sum(stall.client_closed for stall in self.stalls) >= count:
                    return True
            time.sleep(0.05)
        return False

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                stall = self._stalls_left > 0
                self._stalls_left -= stall
            thread = threading.Thread(target=self._serve, args=(client, stall), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self, client: socket.socket, stall: bool) -> None:
        client.settimeout(_SHUTDOWN_POLL)
        reader = _Lines(client, self._stopping)
        try:
            client.sendall(b"220 stalling-relay ESMTP\r\n")
            while (line := reader.line()) is not None:
                if not self._command(client, reader, line[:4].upper(), stall):
                    return
        except OSError:
            return
        finally:
            client.close()

    def _command(self, client: socket.socket, reader: _Lines, verb: bytes, stall: bool) -> bool:
        """Answer one command (or stall on it); False when the connection is done."""
        if stall and (verb, self.stage) in ((b"MAIL", Stage.MAIL), (b"DATA", Stage.DATA)):
            self._stall(reader)
            return False
        if verb in (b"EHLO", b"HELO"):
            client.sendall(b"250-stalling-relay\r\n250 8BITMIME\r\n")
        elif verb == b"DATA":
            client.sendall(b"354 go ahead\r\n")
            if stall and self.stage is Stage.BODY:
                reader.take(_BODY_READ)
                self._stall(reader)
                return False
            body = reader.until_dot()
            if body is None:
                return False
            self._store(body)
            if stall and self.stage is Stage.END:
                self._stall(reader)
                return False
            client.sendall(b"250 2.0.0 stored\r\n")
        elif verb == b"QUIT":
            client.sendall(b"221 bye\r\n")
            return False
        else:  # MAIL, RCPT, RSET, NOOP
            client.sendall(b"250 OK\r\n")
        return True

    def _stall(self, reader: _Lines) -> None:
        """Say nothing, read nothing for ``hold`` seconds, then read (without answering)
        until the client hangs up, or the test ends."""
        if self._on_stall is not None:
            self._on_stall()
        self._stopping.wait(self._hold)
        closed = reader.wait_for_close()
        with self._lock:
            self.stalls.append(Stall(self.stage, client_closed=closed))

    def _store(self, body: bytes) -> None:
        job_id = message_from_bytes(body).get(JOB_ID_HEADER)
        with self._lock:
            self.job_ids.append(str(job_id))


class _Lines:
    """Reading SMTP lines and message data from a socket, giving up when the relay stops."""

    def __init__(self, client: socket.socket, stopping: threading.Event) -> None:
        self._client = client
        self._stopping = stopping
        self._buffer = b""

    def _fill(self) -> bool:
        while not self._stopping.is_set():
            try:
                chunk = self._client.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                return False
            self._buffer += chunk
            return True
        return False

    def line(self) -> bytes | None:
        while b"\r\n" not in self._buffer:
            if not self._fill():
                return None
        line, _, self._buffer = self._buffer.partition(b"\r\n")
        return line

    def take(self, size: int) -> None:
        while len(self._buffer) < size:
            if not self._fill():
                return
        self._buffer = self._buffer[size:]

    def until_dot(self) -> bytes | None:
        """The message up to its ending dot, undotted; None if the client hung up first.
        Only the newest chunk (and the end of the one before) is searched for the end."""
        chunks = [self._buffer]
        while not _ends(chunks):
            if not self._fill_into(chunks):
                return None
        body, _, self._buffer = b"".join(chunks).partition(b"\r\n.\r\n")
        return body.replace(b"\r\n..", b"\r\n.") + b"\r\n"

    def _fill_into(self, chunks: list[bytes]) -> bool:
        while not self._stopping.is_set():
            try:
                chunk = self._client.recv(1 << 20)
            except TimeoutError:
                continue
            if not chunk:
                return False
            chunks.append(chunk)
            return True
        return False

    def wait_for_close(self) -> bool:
        """Read and drop whatever comes until the client's FIN or reset (True), or until
        the test stops the relay (False). A client stuck writing a message gets its data
        read now, so its close (queued behind that data) arrives too."""
        while not self._stopping.is_set():
            try:
                if self._client.recv(65536) == b"":
                    return True
            except TimeoutError:
                continue
            except OSError:
                return True
        return False


def _ends(chunks: list[bytes]) -> bool:
    last = chunks[-1] if len(chunks) == 1 else chunks[-2][-4:] + chunks[-1]
    return b"\r\n.\r\n" in last
