"""UTC stamps as ``mailfleet stats``, ``dlq`` and ``suppression`` print them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from mailfleet.shared.clock import utc_stamp


def test_aware_naive_and_other_zones() -> None:
    """Naive counts as UTC (py-amqp's timestamps); another zone is converted."""
    moment = datetime(2026, 1, 2, 10, 0, 5, 250_000, tzinfo=UTC)
    paris = moment.astimezone(timezone(timedelta(hours=1)))
    stamps = {utc_stamp(moment), utc_stamp(moment.replace(tzinfo=None)), utc_stamp(paris)}
    assert {"2026-01-02T10:00:05Z"} == stamps


def test_finer_timespec() -> None:
    moment = datetime(2026, 1, 2, 10, 0, 5, 250_000, tzinfo=UTC)
    assert "2026-01-02T10:00:05.250000Z" == utc_stamp(moment, timespec="auto")
