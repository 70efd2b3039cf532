"""Coalesced writes: a publish burst's frames reach the socket in fewer, larger writes, all
of them before the caller waits, and none after a failure."""

from __future__ import annotations

import pytest

from mailfleet.producer.coalesce import CoalescedWrites


class Transport:
    def __init__(self) -> None:
        self.written: list[bytes] = []
        self._write = self.written.append


class Connection:
    def __init__(self) -> None:
        self.transport = Transport()


class TestCoalescedWrites:
    def test_writes_are_joined_until_flushed_and_copied(self) -> None:
        """Frames in a reused buffer are copied; flush sends them as one write."""
        connection = Connection()
        reused = bytearray(b"aaaa")
        with CoalescedWrites(connection) as writes:
            connection.transport._write(memoryview(reused))
            reused[:] = b"bbbb"
            connection.transport._write(memoryview(reused))
            assert [] == connection.transport.written
            writes.flush()
            connection.transport._write(b"cc")

        assert [b"aaaabbbb", b"cc"] == connection.transport.written

    def test_the_limit_sends_a_full_buffer_at_once(self) -> None:
        connection = Connection()
        with CoalescedWrites(connection, limit=5):
            for chunk in (b"abc", b"def", b"g"):
                connection.transport._write(chunk)
            assert [b"abcdef"] == connection.transport.written

        assert [b"abcdef", b"g"] == connection.transport.written

    def test_after_a_failure_nothing_buffered_is_sent_and_writes_are_direct_again(
        self,
    ) -> None:
        connection = Connection()

        def publish_then_fail() -> None:
            with CoalescedWrites(connection):
                connection.transport._write(b"lost")
                raise OSError("connection reset")

        with pytest.raises(OSError, match="reset"):
            publish_then_fail()
        connection.transport._write(b"direct")

        assert [b"direct"] == connection.transport.written

    def test_a_transport_without_write_is_left_alone(self) -> None:
        """Nothing to hook: the writes go as they always did."""
        with CoalescedWrites(object()) as writes:
            writes.flush()
