"""The delivery report's rows: rates over what was sent, and the rows marked as too high."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mailfleet.producer.ops.report import Row, days_back
from mailfleet.shared.names import Names
from mailfleet.shared.reports import Count, Metric, ReportKeys, parse_field


def _row(sent: int, hard: int = 0, complained: int = 0) -> Row:
    row = Row("example.com")
    row.counts[Metric.SENT] = sent
    row.counts[Metric.HARD_BOUNCED] = hard
    row.counts[Metric.COMPLAINED] = complained
    return row


class TestRows:
    @pytest.mark.parametrize(
        ("row", "flags"),
        [
            (_row(1000, hard=20, complained=1), []),  # exactly at both levels: not over
            (_row(1000, hard=21), ["hard-bounce rate over 2 %"]),
            (_row(1000, complained=2), ["complaint rate over 0.1 %"]),
        ],
    )
    def test_rows_over_a_threshold_are_marked(self, row: Row, flags: list[str]) -> None:
        assert flags == row.flags

    def test_no_rate_without_sends(self) -> None:
        assert None is _row(0, hard=1).rate(Metric.HARD_BOUNCED)
        assert [] == _row(0, hard=1).flags


class TestCounters:
    def test_a_counter_field_reads_back(self) -> None:
        count = Count(Metric.SOFT_BOUNCED, "example.com", "example.org", "bulk", 3)
        assert Count(Metric.SOFT_BOUNCED, "example.com", "example.org", "bulk") == parse_field(
            count.field
        )

    @pytest.mark.parametrize("field", ["", "sent|a|b", "nonsense|a|b|c", "sent|a|b|c|d"])
    def test_a_malformed_field_is_skipped(self, field: str) -> None:
        assert None is parse_field(field)

    def test_sends_and_complaints_are_also_counted_by_the_hour(self) -> None:
        keys = ReportKeys(Names("ns"))
        now = datetime(2026, 12, 2, 7, 30, tzinfo=UTC)
        commands = keys.increments(
            [
                Count(Metric.SENT, "a.com", "b.org", "bulk", 2),
                Count(Metric.DEFERRED, "a.com", "b.org", "bulk"),
            ],
            now,
        )
        assert [
            ("HINCRBY", "{ns}:report:2026-12-02", "sent|a.com|b.org|bulk", 2),
            ("HINCRBY", "{ns}:hourly:2026120207", "sent|a.com", 2),
            ("HINCRBY", "{ns}:report:2026-12-02", "deferred|a.com|b.org|bulk", 1),
        ] == commands

    def test_the_days_of_a_span_stop_at_what_is_kept(self) -> None:
        now = datetime(2026, 12, 2, 1, 0, tzinfo=UTC)
        assert ["2026-12-01", "2026-12-02"] == days_back(now, 3600.0, 35)
        assert 35 == len(days_back(now, 400 * 86400.0, 35))
