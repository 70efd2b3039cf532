"""The ``x-mailfleet-recipients`` header, as the worker and ``mailfleet dlq`` write and read it."""

from __future__ import annotations

from typing import Any

import pytest

from mailfleet.shared.names import RECIPIENTS, read_recipients, write_recipients


def test_written_recipients_read_back() -> None:
    message_headers: dict[str, Any] = {}
    write_recipients(message_headers, ["ann@example.org", "Bob@Example.net"])
    assert ["ann@example.org", "Bob@Example.net"] == read_recipients(message_headers[RECIPIENTS])


def test_all_recipients_remove_the_header() -> None:
    message_headers: dict[str, Any] = {RECIPIENTS: '["ann@example.org"]', "other": 1}
    write_recipients(message_headers, None)
    assert {"other": 1} == message_headers


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ('["a@example.org"]', ["a@example.org"]),
        (b'["a@example.org"]', ["a@example.org"]),  # pika hands over undecodable text as bytes
        ("not json", None),
        ('{"a": 1}', None),
        (7, None),
    ],
)
def test_read(value: object, expected: list[str] | None) -> None:
    assert expected == read_recipients(value)
