"""A publish burst's frames gathered into fewer socket writes.

py-amqp writes every message (its method, header and body frames) with one ``sendall``: a
system call, and a TCP segment for the broker to take in, per message. While a
:class:`~mailfleet.producer.confirms.ConfirmChannel` publishes a batch, its connection's
writes are appended to a buffer instead and sent together, 64 KiB at a time and before each
wait for confirms, so the broker always has every frame it is asked to confirm. Measured
with 30 000 messages in batches of 2 000: about 20 % less CPU for the publisher and a third
less wall time (``tests/benchmarks/bench_campaign.py`` publishes through it).

The buffer sits under py-amqp's own ``transport.write`` (its ``_write``, the socket's
``sendall``), so error handling above it is unchanged. A connection whose transport has no
``_write`` is left alone. Frames still buffered when the publish fails are never sent:
their messages are unconfirmed, so the producer publishes them again, as it would after
any broken connection.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Any

_LIMIT = 64 * 1024


class CoalescedWrites:
    """Within ``with``, the connection's writes are buffered; :meth:`flush` sends them."""

    def __init__(self, amqp_connection: Any, limit: int = _LIMIT) -> None:
        transport = getattr(amqp_connection, "transport", None)
        self._transport = transport if callable(getattr(transport, "_write", None)) else None
        self._limit = limit
        self._chunks: list[bytes] = []
        self._size = 0
        self._real: Callable[[bytes], None] | None = None

    def __enter__(self) -> CoalescedWrites:
        if self._transport is not None:
            self._real = self._transport._write
            self._transport._write = self._append
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if exc is None:
                self.flush()
        finally:
            self._chunks, self._size = [], 0
            if self._transport is not None and self._real is not None:
                self._transport._write = self._real
                self._real = None

    def flush(self) -> None:
        """Send what is buffered, in one write."""
        if not self._chunks or self._real is None:
            return
        data = b"".join(self._chunks)
        self._chunks, self._size = [], 0
        self._real(data)

    def _append(self, data: bytes | memoryview) -> None:
        # py-amqp hands over a view of a buffer it reuses for the next frame: copy it.
        self._chunks.append(bytes(data))
        self._size += len(data)
        if self._size >= self._limit:
            self.flush()
