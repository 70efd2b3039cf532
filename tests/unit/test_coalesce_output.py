"""Joining the frames pika has waiting into one write: same bytes, same order, one chunk."""

from __future__ import annotations

from collections import deque
from types import SimpleNamespace
from typing import Any

from mailfleet.worker.broker.connection import coalesce_output


def _connection(*chunks: bytes) -> Any:
    transport = SimpleNamespace(_tx_buffers=deque(chunks))
    return SimpleNamespace(_impl=SimpleNamespace(_transport=transport))


def test_waiting_frames_become_one_chunk_in_order() -> None:
    connection = _connection(b"method", b"header", b"body", b"method2")
    coalesce_output(connection)
    assert deque([b"methodheaderbodymethod2"]) == connection._impl._transport._tx_buffers


def test_one_chunk_or_none_is_left_alone() -> None:
    single = _connection(b"only")
    coalesce_output(single)
    assert deque([b"only"]) == single._impl._transport._tx_buffers
    coalesce_output(None)  # no connection yet: nothing to do
    coalesce_output(SimpleNamespace(_impl=None))  # a closed one: nothing to do
