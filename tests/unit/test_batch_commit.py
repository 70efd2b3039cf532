"""The end of a sender's batch: acks held until the sent marks' replies are read, requeues at
once; a ledger whose replies cannot be read costs a log line, never the acks. The write-ahead
ledger runs on a fake of the one redis-py connection it writes to (tests/integration has the
same on a real Redis)."""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any, cast

import pika
import pytest
import redis

from mailfleet.shared.errors import BrokerUnavailable, MailfleetError, RedisUnavailable
from mailfleet.shared.events import Event, EventKind
from mailfleet.shared.job import Lane
from mailfleet.shared.names import Names
from mailfleet.worker.batch_commit import BatchCommit, HeldAcks, WriteAheadLedger
from mailfleet.worker.events import EventRecorder
from mailfleet.worker.inbox import Delivery
from tests.unit.fakes import Journal, make_delivery, make_job

TTL = 3600


class FakeRedisConnection:
    """Records the packed commands written and answers each reply read, or fails as told."""

    def __init__(self, journal: Journal, name: str) -> None:
        self.journal = journal
        self.name = name
        self.written: list[tuple[Any, ...]] = []
        self.fail_write: Exception | None = None
        self.fail_read: Exception | None = None
        self.disconnected = False

    def pack_commands(self, commands: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        return list(commands)

    def send_packed_command(self, packed: list[tuple[Any, ...]], check_health: bool = True) -> None:
        assert not check_health, "a health-check PING's reply would be read as a mark's"
        if self.fail_write is not None:
            raise self.fail_write
        self.journal.append(f"{self.name} write {len(packed)}")
        self.written += packed

    def read_response(self) -> int:
        if self.fail_read is not None:
            raise self.fail_read
        self.journal.append(f"{self.name} read")
        return 1

    def disconnect(self) -> None:
        self.disconnected = True


class FakePool:
    def __init__(self, *connections: FakeRedisConnection) -> None:
        self.idle = deque(connections)
        self.released: list[FakeRedisConnection] = []

    def get_connection(self) -> FakeRedisConnection:
        return self.idle.popleft()

    def release(self, connection: FakeRedisConnection) -> None:
        self.released.append(connection)


class FakeClient:
    def __init__(self, pool: FakePool) -> None:
        self.connection_pool = pool


class RecordingConsumer:
    """What HeldAcks settles through (batch_commit.Settling)."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.acked: list[list[int]] = []
        self.requeued: list[int] = []

    def ack_many(self, deliveries: list[Delivery]) -> None:
        tags = [delivery.delivery_tag for delivery in deliveries]
        self.journal.append(f"ack {tags}")
        self.acked.append(tags)

    def requeue(self, delivery: Delivery) -> None:
        self.journal.append(f"requeue {delivery.delivery_tag}")
        self.requeued.append(delivery.delivery_tag)


def delivery(tag: int) -> Delivery:
    return Delivery(Lane.BULK, tag, 1, b"{}", pika.BasicProperties())


class FakeEventSink:
    """Records the events published (batch_commit.EventSink); refuses as scripted first."""

    def __init__(self, journal: Journal, *refusals: MailfleetError) -> None:
        self.journal = journal
        self.refusals = deque(refusals)
        self.published: list[list[Event]] = []
        self.closed = False

    def publish(self, events: list[Event]) -> None:
        if self.refusals:
            self.journal.append("events refused")
            raise self.refusals.popleft()
        self.journal.append(f"events {len(events)}")
        self.published.append(events)

    def close(self) -> None:
        self.closed = True


class Rig:
    def __init__(self, *refusals: MailfleetError) -> None:
        self.journal: Journal = []
        self.first = FakeRedisConnection(self.journal, "first")
        self.second = FakeRedisConnection(self.journal, "second")
        self.pool = FakePool(self.first, self.second)
        self.consumer = RecordingConsumer(self.journal)
        client = cast(redis.Redis, FakeClient(self.pool))
        self.ledger = WriteAheadLedger(client, Names("unit"), TTL)
        self.events = EventRecorder()
        self.sink = FakeEventSink(self.journal, *refusals)
        self.stopping = threading.Event()
        self.commit = BatchCommit(
            self.ledger, HeldAcks(self.consumer), self.events, self.sink, self.stopping
        )

    def delivered(self, tag: int) -> None:
        """What the Settler does for an email the relay accepted: mark, record, ack."""
        job = make_job(tag)
        held = make_delivery(job, tag=tag)
        self.ledger.mark(job.id, job.recipients())
        self.events.record(EventKind.DELIVERED, held, job, job.recipients())
        self.commit.acks.ack(held)


class TestHeldAcks:
    def test_acks_wait_for_the_release_and_requeues_go_at_once(self) -> None:
        journal: Journal = []
        consumer = RecordingConsumer(journal)
        acks = HeldAcks(consumer)
        acks.ack(delivery(1))
        acks.requeue(delivery(2))
        acks.ack(delivery(3))
        assert (["requeue 2"], []) == (journal, consumer.acked)

        acks.release()
        assert [[1, 3]] == consumer.acked
        acks.release()  # nothing held: no empty settle
        assert [[1, 3]] == consumer.acked


class TestBatchCommit:
    def test_every_mark_s_replies_are_read_before_the_batch_s_acks_go(self) -> None:
        rig = Rig()
        rig.ledger.mark("job-1", ["a@example.org", "b@example.org"])
        rig.commit.acks.ack(delivery(1))
        rig.ledger.mark("job-2", ["c@example.org"])
        rig.commit.acks.ack(delivery(2))
        assert [] == rig.consumer.acked

        rig.commit.commit()
        # Two marks of 2 commands, then the batch's counters (3), then every reply.
        assert [
            "first write 2",
            "first write 2",
            "first write 3",
            *["first read"] * 7,
            "ack [1, 2]",
        ] == rig.journal

    def test_a_mark_writes_the_ledger_hash_and_its_expiry_and_the_flush_the_counters(
        self,
    ) -> None:
        rig = Rig()
        rig.ledger.mark("job-1", ["a@example.org", "b@example.org"])
        rig.ledger.mark("job-2", ["c@example.org"])
        hset, expire, _, _ = rig.first.written
        assert ("HSET", "{unit}:sent:job-1", "a@example.org") == hset[:3]
        assert "b@example.org" == hset[4]
        assert ("EXPIRE", "{unit}:sent:job-1", TTL) == expire

        rig.ledger.flush()  # the counters of both marks, summed
        incrby, slot, slot_expiry = rig.first.written[4:]
        assert ("INCRBY", "{unit}:stats:delivered", 3) == incrby
        assert ("INCRBY", 3) == (slot[0], slot[2])
        assert str(slot[1]).startswith("{unit}:stats:delivered:")
        assert ("EXPIRE", slot[1]) == slot_expiry[:2]

    def test_a_commit_with_nothing_marked_reads_nothing(self) -> None:
        rig = Rig()
        rig.commit.acks.ack(delivery(1))
        rig.commit.commit()

        assert ["ack [1]"] == rig.journal
        assert [] == rig.pool.released

    def test_replies_that_cannot_be_read_are_logged_and_the_acks_still_go(self) -> None:
        """The relay accepted those emails: acking them is right even if their marks are
        in doubt. The connection, out of step now, is dropped; the next mark opens another."""
        rig = Rig()
        rig.ledger.mark("job-1", ["a@example.org"])
        rig.commit.acks.ack(delivery(1))
        rig.first.fail_read = redis.ConnectionError("gone")
        rig.commit.commit()

        assert [[1]] == rig.consumer.acked
        assert rig.first.disconnected
        assert [rig.first] == rig.pool.released

        rig.ledger.mark("job-2", ["b@example.org"])
        rig.commit.acks.ack(delivery(2))
        rig.commit.commit()
        assert [[1], [2]] == rig.consumer.acked
        assert [
            "first write 2",
            "first write 3",
            "ack [1]",
            "second write 2",
            "second write 3",
            *["second read"] * 5,
            "ack [2]",
        ] == rig.journal

    def test_a_mark_that_cannot_be_written_raises_and_leaves_nothing_to_read(self) -> None:
        rig = Rig()
        rig.ledger.mark("job-1", ["a@example.org"])
        rig.first.fail_write = redis.ConnectionError("gone")
        with pytest.raises(RedisUnavailable, match="cannot write the sent ledger"):
            rig.ledger.mark("job-2", ["b@example.org"])
        rig.commit.acks.ack(delivery(1))
        rig.commit.commit()

        assert rig.first.disconnected
        # job-1's replies went with the connection; its counters, summed apart, did not.
        assert ["first write 2", "second write 3", *["second read"] * 3, "ack [1]"] == rig.journal

    def test_close_commits_and_gives_the_connection_back(self) -> None:
        rig = Rig()
        rig.ledger.mark("job-1", ["a@example.org"])
        rig.commit.acks.ack(delivery(1))
        rig.commit.close()

        assert [[1]] == rig.consumer.acked
        assert 5 == rig.journal.count("first read")
        assert ([rig.first], False) == (rig.pool.released, rig.first.disconnected)


class TestEvents:
    def test_the_batch_s_events_are_confirmed_after_the_marks_and_before_the_acks(self) -> None:
        rig = Rig()
        rig.delivered(1)
        rig.delivered(2)
        rig.commit.commit()

        assert ["first write 3", *["first read"] * 7, "events 2", "ack [1, 2]"] == rig.journal[2:]
        assert [["job-1", "job-2"]] == [
            [event.job_id for event in events] for events in rig.sink.published
        ]

    def test_a_batch_without_events_publishes_none(self) -> None:
        rig = Rig()
        rig.commit.acks.ack(delivery(1))
        rig.commit.commit()

        assert ([], [[1]]) == (rig.sink.published, rig.consumer.acked)

    def test_events_the_broker_refuses_are_published_again_before_the_acks(self) -> None:
        rig = Rig(BrokerUnavailable("connection lost"))
        rig.delivered(1)
        started = time.monotonic()
        rig.commit.commit()

        assert time.monotonic() - started >= 0.4  # backed off before trying again
        assert ["events refused", "events 1", "ack [1]"] == rig.journal[-3:]

    def test_stopping_while_the_broker_refuses_leaves_the_jobs_unacked(self) -> None:
        """Neither acked nor requeued: the broker hands them out again, their events with
        them; the sent ledger keeps the emails from going twice."""
        rig = Rig(BrokerUnavailable("connection lost"))
        rig.stopping.set()
        rig.delivered(1)
        rig.commit.commit()

        assert ([], []) == (rig.consumer.acked, rig.consumer.requeued)
        rig.commit.acks.ack(delivery(2))
        rig.commit.commit()
        assert [[2]] == rig.consumer.acked  # the dropped ack stays dropped

    def test_close_closes_the_sink(self) -> None:
        rig = Rig()
        rig.delivered(1)
        rig.commit.close()

        assert rig.sink.closed
        assert [[1]] == rig.consumer.acked

    def test_without_a_sink_the_acks_go_after_the_marks(self) -> None:
        rig = Rig()
        commit = BatchCommit(rig.ledger, HeldAcks(rig.consumer), rig.events)
        rig.ledger.mark("job-1", ["a@example.org"])
        rig.events.record(
            EventKind.DELIVERED, make_delivery(make_job(1)), make_job(1), ["a@example.org"]
        )
        commit.acks.ack(delivery(1))
        commit.commit()

        assert [[1]] == rig.consumer.acked
