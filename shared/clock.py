"""Times as mailfleet shows them: in UTC, ISO 8601, ending in ``Z``."""

from __future__ import annotations

from datetime import UTC, datetime


def as_utc(moment: datetime) -> datetime:
    """``moment`` in UTC; a naive one (py-amqp decodes AMQP timestamps so) is taken as UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def utc_stamp(moment: datetime, timespec: str = "seconds") -> str:
    """``2026-01-02T10:00:00Z``: ``moment`` (naive taken as UTC) to ``timespec``."""
    return as_utc(moment).isoformat(timespec=timespec).replace("+00:00", "Z")
