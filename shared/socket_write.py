"""Writing to a socket that has a timeout, without the poll() that Python puts before it.

Python waits with poll() before every send on a socket with a timeout, even when the socket
can take the data at once, as it nearly always can: two system calls, and two hand-offs of
the GIL among a worker's threads, where one would do. The write is tried first, on the
socket's file descriptor (already non-blocking: Python's timeout sockets are); only what it
could not take goes through ``sendall``, which waits with the timeout as before. TLS sockets
are written as before: their bytes are not the caller's.
"""

from __future__ import annotations

import os
import socket


def send_all(sock: socket.socket, data: bytes) -> None:
    """``sock.sendall(data)``, with a first try that needs no poll; raises as it does."""
    if type(sock) is not socket.socket or sock.gettimeout() is None:
        sock.sendall(data)
        return
    try:
        sent = os.write(sock.fileno(), data)
    except BlockingIOError:  # the send buffer is full: wait for room, with the timeout
        sent = 0
    if sent < len(data):
        sock.sendall(memoryview(data)[sent:])
