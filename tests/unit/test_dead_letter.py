"""Reading dead letters and selecting them (``mailfleet dlq``), without a broker."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mailfleet.producer.ops.dlq.letter import DeadLetter, Selection, read_dead_letter
from mailfleet.producer.ops.dlq.report import ReplayReport
from mailfleet.shared.job import DEFAULT_LIMITS, JOB_TYPE
from mailfleet.shared.names import Names

NAMES = Names("mf")
NOW = datetime(2026, 1, 2, 12, 0, tzinfo=UTC)
JOB = {
    "id": "j1",
    "from": "a@example.com",
    "to": ["Ann <ann@Example.ORG>"],
    "cc": ["bob@example.net"],
    "text": "hi",
    "lane": "bulk",
}


@dataclass
class Message:
    """The three attributes of a py-amqp message that reading a dead letter uses."""

    body: bytes
    properties: dict[str, Any] = field(default_factory=dict)
    delivery_tag: int = 1


def letter(headers: dict[str, Any], body: bytes | None = None, **properties: Any) -> DeadLetter:
    message = Message(
        json.dumps(JOB).encode() if body is None else body,
        {"message_id": "j1", "type": JOB_TYPE, **properties, "application_headers": headers},
    )
    return read_dead_letter(message, NAMES, DEFAULT_LIMITS)


WORKER_HEADERS = {
    "x-mailfleet-reason": "permanent",
    "x-mailfleet-error": "550 5.1.1 no such user",
    "x-mailfleet-attempts": 2,
    "x-mailfleet-failed-at": "2026-01-02T10:00:00+00:00",
    "x-mailfleet-lane": "transactional",
}
BROKER_HEADERS = {
    "x-death": [
        {
            "count": 1,
            "reason": "delivery_limit",
            "queue": "mf.bulk",
            "time": datetime(2026, 1, 2, 11, 0),  # py-amqp: naive UTC
            "exchange": "mf",
            "routing-keys": ["bulk"],
        }
    ],
    "x-first-death-reason": "delivery_limit",
    "x-mailfleet-attempt": 3,
}


class TestReadDeadLetter:
    """``read_dead_letter``."""

    def test_a_worker_dead_letter_keeps_its_headers(self) -> None:
        """Reason, error, attempts, lane and failed-at come from the x-mailfleet headers."""
        read = letter(WORKER_HEADERS)
        assert ("permanent", "550 5.1.1 no such user", 2, "transactional") == (
            read.reason,
            read.error,
            read.attempts,
            read.lane,
        )
        assert datetime(2026, 1, 2, 10, 0, tzinfo=UTC) == read.failed_at
        assert ["example.net", "example.org"] == read.domains

    def test_a_broker_dead_letter_is_crashed_in_the_lane_of_x_death(self) -> None:
        """Only x-death: reason `crashed`, lane from its queue, time from its entry."""
        read = letter(BROKER_HEADERS)
        assert ("crashed", "bulk", 3) == (read.reason, read.lane, read.attempts)
        assert "delivery_limit in mf.bulk" == read.error
        assert datetime(2026, 1, 2, 11, 0, tzinfo=UTC) == read.failed_at

    def test_another_broker_reason_is_unknown(self) -> None:
        """A message the broker dead-lettered for another reason is `unknown`, not `crashed`."""
        death = {**BROKER_HEADERS["x-death"][0], "reason": "rejected"}
        assert "unknown" == letter({"x-death": [death]}).reason

    def test_the_recipients_header_narrows_the_recipients(self) -> None:
        """x-mailfleet-recipients (a JSON list) names the recipients still owed the job."""
        read = letter({**WORKER_HEADERS, "x-mailfleet-recipients": '["bob@example.net"]'})
        assert (["bob@example.net"], True) == (read.recipients, read.recipients_header)

    @pytest.mark.parametrize(
        ("body", "properties"),
        [(b"\xff\x00", {}), (b'{"from": "a@example.com"}', {}), (None, {"type": "other.v9"})],
        ids=["bytes", "no-recipient", "other-type"],
    )
    def test_a_body_that_is_not_a_job_is_invalid(
        self, body: bytes | None, properties: dict[str, Any]
    ) -> None:
        """No job, a problem that says why, and no recipients."""
        read = letter({"x-mailfleet-reason": "invalid"}, body, **properties)
        assert (None, []) == (read.job, read.recipients)
        assert read.problem


class TestSelection:
    """``Selection.matches``."""

    @pytest.mark.parametrize(
        ("selection", "expected"),
        [
            (Selection(), True),
            (Selection(reasons=frozenset({"permanent"})), True),
            (Selection(reasons=frozenset({"crashed"})), False),
            (Selection(lanes=frozenset({"bulk"})), False),
            (Selection(domains=frozenset({"EXAMPLE.org"})), True),
            (Selection(domains=frozenset({"example.com"})), False),
            (Selection(ids=frozenset({"j1", "j2"})), True),
            (Selection(older_than=3600), True),
            (Selection(older_than=3 * 3600), False),
            (Selection(reasons=frozenset({"permanent"}), lanes=frozenset({"bulk"})), False),
        ],
    )
    def test_every_filter_given_must_pass(self, selection: Selection, expected: bool) -> None:
        """A worker letter (permanent, transactional, failed 2 h ago) against each filter."""
        assert expected == selection.matches(letter(WORKER_HEADERS), NOW)

    def test_an_unknown_age_is_never_old_enough(self) -> None:
        """Without failed-at or x-death time, --older-than does not match."""
        read = letter({"x-mailfleet-reason": "permanent"})
        assert not Selection(older_than=1).matches(read, NOW + timedelta(days=365))


class TestReplayReport:
    """``ReplayReport.summary``."""

    def test_summary_counts_each_outcome(self) -> None:
        """One line: replayed, skipped with why, and what is left."""
        report = ReplayReport(
            total=10, replayed=["a", "b"], skipped_sent=["c"], skipped_suppressed=["d"]
        )
        expected = "replayed 2, skipped 2 (already sent 1, suppressed 1), left 6"
        assert expected == report.summary()

    def test_a_dry_run_leaves_everything(self) -> None:
        """A dry run says what it would do and that all letters are still there."""
        report = ReplayReport(total=3, dry_run=True, replayed=["a"], invalid=["x"])
        assert report.summary().startswith("dry run: would replay 1, would skip 0")
        assert 3 == report.left
