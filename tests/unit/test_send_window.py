"""Send windows: when a window next opens, across weekends and DST, and the worker's wait."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from mailfleet.shared.job import Lane
from mailfleet.shared.send_window import SendWindow, parse_days, parse_hours, parse_window
from mailfleet.worker.send_time import SendTime
from tests.unit.fakes import make_job

BERLIN = SendWindow(days="mon-fri", hours="09:00-18:00", tz="Europe/Berlin")


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


class TestOpensAt:
    @pytest.mark.parametrize(
        ("now", "opens"),
        [
            (utc(2026, 12, 2, 10, 0), utc(2026, 12, 2, 10, 0)),  # Wednesday 11:00: open
            (utc(2026, 12, 2, 6, 0), utc(2026, 12, 2, 8, 0)),  # before 09:00 CET
            (utc(2026, 12, 2, 17, 0), utc(2026, 12, 3, 8, 0)),  # after 18:00 CET
            (utc(2026, 12, 4, 17, 30), utc(2026, 12, 7, 8, 0)),  # Friday night: Monday
            (utc(2026, 12, 5, 12, 0), utc(2026, 12, 7, 8, 0)),  # Saturday
            (utc(2026, 3, 27, 18, 0), utc(2026, 3, 30, 7, 0)),  # over the switch to CEST
            (utc(2026, 10, 23, 18, 0), utc(2026, 10, 26, 8, 0)),  # over the switch to CET
        ],
    )
    def test_next_opening_in_berlin(self, now: datetime, opens: datetime) -> None:
        """Weekdays 09:00-18:00 Berlin time, whatever the offset that day."""
        assert opens == BERLIN.opens_at(now)

    def test_the_end_is_exclusive_and_24_00_is_midnight(self) -> None:
        """At 18:00 the window is closed; 00:00-24:00 is open all day."""
        assert utc(2026, 12, 3, 8, 0) == BERLIN.opens_at(utc(2026, 12, 2, 17, 0))
        whole_day = SendWindow(days="wed", hours="00:00-24:00", tz="UTC")
        assert utc(2026, 12, 2, 23, 59, 59) == whole_day.opens_at(utc(2026, 12, 2, 23, 59, 59))
        assert utc(2026, 12, 9, 0, 0) == whole_day.opens_at(utc(2026, 12, 3, 0, 0))

    def test_a_wall_time_skipped_by_dst_opens_just_after_the_gap(self) -> None:
        """02:30 does not exist in Berlin on 29 March 2026: it opens at 03:30 CEST."""
        window = SendWindow(hours="02:30-05:00", tz="Europe/Berlin")
        assert utc(2026, 3, 29, 1, 30) == window.opens_at(utc(2026, 3, 29, 0, 0))

    def test_seconds_until_open(self) -> None:
        assert 0 == BERLIN.seconds_until_open(utc(2026, 12, 2, 10, 0))
        assert 7200 == BERLIN.seconds_until_open(utc(2026, 12, 2, 6, 0))


class TestParsing:
    @pytest.mark.parametrize(
        ("spec", "days"),
        [
            ("mon-fri", {0, 1, 2, 3, 4}),
            ("sat,sun", {5, 6}),
            ("fri-mon", {4, 5, 6, 0}),
            ("Wed", {2}),
        ],
    )
    def test_days(self, spec: str, days: set[int]) -> None:
        assert days == parse_days(spec)

    @pytest.mark.parametrize(
        ("spec", "problem"),
        [
            ("9-18", "HH:MM-HH:MM"),
            ("18:00-09:00", "must end after it starts"),
            ("09:00-25:00", "not a time of day"),
            ("09:60-10:00", "not a time of day"),
        ],
    )
    def test_bad_hours_say_why(self, spec: str, problem: str) -> None:
        with pytest.raises(ValueError, match=problem):
            parse_hours(spec)

    def test_bad_fields_are_named(self) -> None:
        """An unknown day or time zone is refused with its value."""
        with pytest.raises(ValidationError, match="day names"):
            SendWindow(days="monday-friday")
        with pytest.raises(ValidationError, match="not an IANA time zone"):
            SendWindow(tz="Mars/Olympus")

    def test_the_compact_and_json_forms_are_the_same(self) -> None:
        compact = parse_window("mon-fri 09:00-18:00 Europe/Berlin")
        assert compact == parse_window(compact.model_dump_json())
        assert BERLIN == compact


class TestSendTime:
    def test_a_lane_default_applies_unless_the_job_has_its_own(self) -> None:
        """MAILFLEET_LANE_WINDOWS gives bulk a window; a job's own window wins."""
        send_time = SendTime({Lane.BULK: BERLIN})
        saturday = utc(2026, 12, 5, 12, 0)
        bulk = make_job(1, lane="bulk")
        own = make_job(2, lane="bulk", window={"days": "sat", "tz": "UTC"})
        transactional = make_job(3)

        assert (utc(2026, 12, 7, 8, 0) - saturday).total_seconds() == send_time.wait(bulk, saturday)
        assert 0 == send_time.wait(own, saturday)
        assert 0 == send_time.wait(transactional, saturday)

    def test_the_window_is_judged_when_not_before_lets_the_job_go(self) -> None:
        """not_before Friday 17:59 Berlin, window closes at 18:00: it may go then."""
        now = utc(2026, 12, 4, 12, 0)
        job = make_job(1, not_before="2026-12-04T16:59:00Z", window=BERLIN.model_dump())
        late = make_job(2, not_before="2026-12-04T17:30:00Z", window=BERLIN.model_dump())

        assert timedelta(hours=4, minutes=59).total_seconds() == SendTime().wait(job, now)
        assert (utc(2026, 12, 7, 8, 0) - now).total_seconds() == SendTime().wait(late, now)
