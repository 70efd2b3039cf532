"""The event stream on real servers: one event per fact and recipient, with stable ids and an
order a consumer can rebuild from ``seq``."""

from __future__ import annotations

import subprocess
from collections import defaultdict

import redis
from kombu.connection import Connection

from mailfleet.producer.publisher import Producer
from mailfleet.shared.events import Event, EventKind, event_id
from mailfleet.shared.settings import Settings
from mailfleet.shared.suppression import SuppressionList
from mailfleet.worker.broker.event_publisher import EventPublisher
from mailfleet.worker.events import EventRecorder
from tests.integration.helpers import (
    WorkerThread,
    mailfleet_command,
    make_job,
    settings_env,
    take_events,
)
from tests.integration.relays import ScriptedReplies
from tests.unit.fakes import make_delivery

TRY_LATER = "451 4.3.0 Temporary local problem, try later"
NO_SUCH_USER = "550 5.1.1 No such user here"


def _run(settings: Settings) -> None:
    assert 0 == WorkerThread(settings, burst=True).join(timeout=60)


def test_each_fact_is_one_event_per_recipient_in_seq_order(
    settings: Settings,
    producer: Producer,
    replies: ScriptedReplies,
    amqp_connection: Connection,
    redis_client: redis.Redis,
    events_queue: str,
) -> None:
    replies.script("rcpt2@example.org", TRY_LATER, TRY_LATER, None)
    replies.script("rcpt3@example.org", NO_SUCH_USER)
    replies.script("rcpt4@example.org", TRY_LATER, TRY_LATER, TRY_LATER)
    SuppressionList(redis_client, settings.names).add("rcpt5@example.org", "complained")
    tagged = {"tags": {"campaign": "c1"}, "metadata": {"user": "42"}}
    for number in range(1, 6):
        producer.publish(make_job(number, **tagged))
    _run(settings)
    producer.publish(make_job(1, lane="bulk"))  # the same id again: never mailed twice
    _run(settings)

    received = take_events(amqp_connection, events_queue)
    by_recipient: dict[str, list[Event]] = defaultdict(list)
    for routing_key, event in received:
        assert f"{event.event.value}.{event.lane.value}" == routing_key
        by_recipient[event.recipient].append(event)
    kinds = {
        rcpt: [(e.event.value, e.attempt) for e in sorted(events, key=lambda e: e.seq)]
        for rcpt, events in by_recipient.items()
    }
    assert {
        "rcpt1@example.org": [("delivered", 1), ("duplicate_skipped", 1)],
        "rcpt2@example.org": [("deferred", 1), ("deferred", 2), ("delivered", 3)],
        "rcpt3@example.org": [("bounced", 1), ("dead_lettered", 1)],
        "rcpt4@example.org": [("deferred", 1), ("deferred", 2), ("dead_lettered", 3)],
        "rcpt5@example.org": [("suppressed", 1), ("dead_lettered", 1)],
    } == kinds
    ids = [event.event_id for _, event in received]
    assert len(ids) == len(set(ids))  # every fact once

    events = {(e.recipient, e.event.value, e.attempt): e for _, e in received}
    delivered = events["rcpt1@example.org", "delivered", 1]
    assert event_id("job-1", "rcpt1@example.org", 1, delivered.event) == delivered.event_id
    assert ("job-1", "transactional") == (delivered.job_id, delivered.lane)
    assert delivered.smtp is not None
    assert 250 == delivered.smtp.code
    assert ({"campaign": "c1"}, {"user": "42"}) == (delivered.tags, delivered.metadata)
    assert delivered.relay
    assert delivered.occurred_at.endswith("Z")
    deferred = events["rcpt2@example.org", "deferred", 1]
    assert deferred.smtp is not None
    assert (451, "4.3.0") == (deferred.smtp.code, deferred.smtp.enhanced)
    assert deferred.next_attempt_at is not None
    assert deferred.next_attempt_at > deferred.occurred_at
    assert "permanent" == events["rcpt3@example.org", "dead_lettered", 1].reason
    bounced = events["rcpt3@example.org", "bounced", 1]
    assert bounced.smtp is not None
    assert "5.1.1" == bounced.smtp.enhanced
    assert "exhausted" == events["rcpt4@example.org", "dead_lettered", 3].reason
    assert "suppressed" == events["rcpt5@example.org", "dead_lettered", 1].reason
    assert "bulk" == events["rcpt1@example.org", "duplicate_skipped", 1].lane


def test_events_off_publishes_none(
    settings: Settings, producer: Producer, amqp_connection: Connection, events_queue: str
) -> None:
    quiet = settings.model_copy(update={"events": False})
    producer.publish(make_job(1))
    _run(quiet)
    assert [] == take_events(amqp_connection, events_queue)


def test_events_tail_follows_the_stream_with_a_queue_of_its_own(
    settings: Settings, producer: Producer, replies: ScriptedReplies
) -> None:
    replies.script("rcpt2@example.org", NO_SUCH_USER)
    command = mailfleet_command("events", "tail", "--kind", "delivered", "--kind", "bounced")
    tail = subprocess.Popen(
        [*command, "--count", "2"],
        env=settings_env(settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert tail.stderr is not None
        assert "following" in tail.stderr.readline()  # bound: what follows reaches it
        producer.publish(make_job(1))
        producer.publish(make_job(2))
        _run(settings)
        out, _ = tail.communicate(timeout=30)
    finally:
        tail.kill()
    assert 0 == tail.returncode
    lines = sorted(out.splitlines(), key=lambda line: "job-2" in line)
    assert 2 == len(lines)
    assert "delivered  transactional  job-1  rcpt1@example.org  250" in lines[0]
    assert "bounced  transactional  job-2  rcpt2@example.org  550 5.1.1 No such user" in lines[1]


def test_a_deleted_events_exchange_is_declared_again_and_nothing_is_held_back(
    settings: Settings, producer: Producer, amqp_connection: Connection, events_queue: str
) -> None:
    """Someone deletes {ns}.events while workers run: the next events connection declares
    it again, so the jobs are acked and their events published, once bound again."""
    channel = amqp_connection.channel()
    channel.exchange_delete(settings.names.events_exchange)
    channel.close()
    recorder = EventRecorder()
    recorder.record(EventKind.DELIVERED, make_delivery(make_job(1)), make_job(1), ["a@x.org"])
    publisher = EventPublisher(settings)
    try:
        publisher.publish(recorder.take())  # the exchange is back, the event confirmed
    finally:
        publisher.close()
    channel = amqp_connection.channel()
    channel.queue_bind(events_queue, settings.names.events_exchange, "#")
    channel.close()
    producer.publish(make_job(2))
    _run(settings)
    kinds = [
        (event.job_id, event.event.value) for _, event in take_events(amqp_connection, events_queue)
    ]
    assert [("job-2", "delivered")] == kinds
