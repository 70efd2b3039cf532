"""send_all: the whole of the data, once, with the socket's timeout still in force."""

from __future__ import annotations

import socket
import threading

import pytest

from mailfleet.shared.socket_write import send_all


def pair(timeout: float) -> tuple[socket.socket, socket.socket]:
    writer, reader = socket.socketpair()
    writer.settimeout(timeout)
    writer.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    return writer, reader


def read_exactly(reader: socket.socket, size: int) -> bytes:
    chunks, got = [], 0
    while got < size:
        chunk = reader.recv(65536)
        assert chunk, "closed early"
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def test_a_small_write_arrives_whole() -> None:
    writer, reader = pair(2.0)
    with writer, reader:
        send_all(writer, b"MAIL FROM:<a@example.org>\r\n")
        assert b"MAIL FROM:<a@example.org>\r\n" == reader.recv(100)


def test_what_the_buffer_cannot_take_at_once_follows_in_order() -> None:
    data = bytes(range(256)) * 4096  # 1 MiB: far more than the send buffer
    writer, reader = pair(5.0)
    received: list[bytes] = []
    with writer, reader:
        thread = threading.Thread(target=lambda: received.append(read_exactly(reader, len(data))))
        thread.start()
        send_all(writer, data)
        thread.join(5)
    assert [data] == received


def test_a_peer_that_never_reads_times_out_as_sendall_would() -> None:
    writer, reader = pair(0.2)
    with writer, reader, pytest.raises(TimeoutError):
        send_all(writer, b"x" * (8 * 1024 * 1024))


def test_a_closed_peer_raises() -> None:
    writer, reader = pair(1.0)
    reader.close()
    with writer, pytest.raises(BrokenPipeError):
        send_all(writer, b"RSET\r\n" * 10000)
