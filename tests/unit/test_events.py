"""The event contract: stable ids, UTC milliseconds, and a seq that grows with each fact."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pika

from mailfleet.shared.events import Event, EventKind, event_id, utc_ms
from mailfleet.shared.job import Lane
from mailfleet.shared.names import ATTEMPT, REPLAYS
from mailfleet.worker.events import EventRecorder
from mailfleet.worker.inbox import Delivery
from mailfleet.worker.smtp.replies import SmtpReply
from tests.integration.helpers import make_job


def _delivery(attempt: int, replays: int = 0) -> Delivery:
    headers = {ATTEMPT: attempt, REPLAYS: replays}
    return Delivery(Lane.BULK, 1, 1, b"", pika.BasicProperties(headers=headers))


def test_the_same_fact_has_the_same_id_and_another_fact_another() -> None:
    first = event_id("job-1", "a@example.org", 2, EventKind.DEFERRED)
    assert first == event_id("job-1", "a@example.org", 2, EventKind.DEFERRED)
    others = {
        event_id("job-2", "a@example.org", 2, EventKind.DEFERRED),
        event_id("job-1", "b@example.org", 2, EventKind.DEFERRED),
        event_id("job-1", "a@example.org", 3, EventKind.DEFERRED),
        event_id("job-1", "a@example.org", 2, EventKind.DELIVERED),
    }
    assert 4 == len(others)
    assert first not in others


def test_times_are_utc_milliseconds_with_a_z() -> None:
    moment = datetime(2026, 12, 2, 3, 4, 5, 678901, tzinfo=timezone(timedelta(hours=2)))
    assert "2026-12-02T01:04:05.678Z" == utc_ms(moment)
    assert utc_ms().endswith("Z")


def test_seq_grows_with_attempts_stages_and_replays() -> None:
    recorder = EventRecorder()
    job = make_job(1)
    rcpt = ["rcpt1@example.org"]
    recorder.record(EventKind.DEFERRED, _delivery(1), job, rcpt, reply=SmtpReply(451, "x"))
    recorder.record(EventKind.BOUNCED, _delivery(2), job, rcpt, reply=SmtpReply(550, "y"))
    recorder.record(EventKind.DEAD_LETTERED, _delivery(2), job, rcpt, reason="permanent")
    recorder.record(EventKind.DELIVERED, _delivery(1, replays=1), job, rcpt)
    events = recorder.take()
    seqs = [event.seq for event in events]
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == 4
    assert [] == recorder.take()  # taken once


def test_a_disabled_recorder_records_nothing() -> None:
    recorder = EventRecorder(enabled=False)
    recorder.record(EventKind.DELIVERED, _delivery(1), make_job(1), ["rcpt1@example.org"])
    assert [] == recorder.take()


def test_an_event_round_trips_and_names_its_routing_key() -> None:
    recorder = EventRecorder()
    reply = SmtpReply(550, "5.1.1 No such user")
    recorder.record(
        EventKind.BOUNCED, _delivery(1), make_job(1), ["rcpt1@example.org"], reply=reply
    )
    (event,) = recorder.take()
    assert "bounced.bulk" == event.routing_key
    assert event == Event.from_wire(event.to_wire())
    assert event.smtp is not None
    assert ("5.1.1", 550) == (event.smtp.enhanced, event.smtp.code)
    assert datetime.fromisoformat(event.occurred_at).tzinfo == UTC


def test_a_replayed_job_s_deferral_is_a_new_fact_with_a_new_id() -> None:
    recorder = EventRecorder()
    job, rcpt, busy = make_job(1), ["rcpt1@example.org"], SmtpReply(451, "4.2.0 busy")
    for replays in (0, 1):  # the first round, then after a replay (attempt 1 again)
        recorder.record(EventKind.DEFERRED, _delivery(1, replays), job, rcpt, reply=busy)
    first, again = recorder.take()
    assert first.seq != again.seq
    assert first.event_id != again.event_id
