"""The sent marks a sender writes ahead, on real Redis: in Redis before their replies are
read, acks held until they are, and a Redis that dies mid-batch costs a log line, not a
sender thread."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pika
import pytest
import redis

from mailfleet.shared.errors import RedisUnavailable
from mailfleet.shared.job import Lane
from mailfleet.shared.names import Names
from mailfleet.worker.batch_commit import BatchCommit, HeldAcks, WriteAheadLedger
from mailfleet.worker.inbox import Delivery
from tests.integration.outages import RedisServer

TTL = 3600


class RecordingConsumer:
    def __init__(self) -> None:
        self.acked: list[list[int]] = []
        self.requeued: list[int] = []

    def ack_many(self, deliveries: list[Delivery]) -> None:
        self.acked.append([delivery.delivery_tag for delivery in deliveries])

    def requeue(self, delivery: Delivery) -> None:
        self.requeued.append(delivery.delivery_tag)


def delivery(tag: int) -> Delivery:
    return Delivery(Lane.BULK, tag, 1, b"{}", pika.BasicProperties())


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    server.stop()


def test_marks_reach_redis_before_their_replies_are_read(
    redis_client: redis.Redis, namespace: str
) -> None:
    names = Names(namespace)
    ledger = WriteAheadLedger(redis_client, names, TTL)
    ledger.mark("job-1", ["a@example.org", "b@example.org"])
    ledger.mark("job-2", ["c@example.org"])
    # Not flushed yet: a second client already sees both marks and their expiry.
    assert {b"a@example.org", b"b@example.org"} == set(
        redis_client.hkeys(names.sent_ledger("job-1"))
    )
    assert 0 < redis_client.ttl(names.sent_ledger("job-2")) <= TTL
    ledger.flush()
    assert b"3" == redis_client.get(names.delivered_counter)
    ledger.mark("job-3", ["d@example.org"])  # the connection is in step after a flush
    ledger.close()
    assert b"4" == redis_client.get(names.delivered_counter)


def test_acks_are_held_until_the_commit_and_requeues_go_at_once(
    redis_client: redis.Redis, namespace: str
) -> None:
    consumer = RecordingConsumer()
    commit = BatchCommit(WriteAheadLedger(redis_client, Names(namespace), TTL), HeldAcks(consumer))
    commit.ledger.mark("job-1", ["a@example.org"])
    commit.acks.ack(delivery(1))
    commit.acks.requeue(delivery(2))
    commit.acks.ack(delivery(3))
    assert ([], [2]) == (consumer.acked, consumer.requeued)
    commit.commit()
    assert [[1, 3]] == consumer.acked
    commit.commit()  # nothing held: no empty settle
    assert [[1, 3]] == consumer.acked


def test_a_redis_gone_mid_batch_is_logged_and_the_next_mark_reconnects(
    own_redis: RedisServer, namespace: str
) -> None:
    client = redis.Redis.from_url(own_redis.url, socket_timeout=2)
    names = Names(namespace)
    ledger = WriteAheadLedger(client, names, TTL)
    ledger.mark("job-1", ["a@example.org"])
    ledger.flush()
    own_redis.stop()
    # Written to a dead server's socket: the loss shows when the replies are read, where
    # it is logged, not raised (the relay accepted that email; acking it is still right).
    with contextlib.suppress(RedisUnavailable):
        ledger.mark("job-2", ["b@example.org"])
    ledger.flush()
    with pytest.raises(RedisUnavailable, match="cannot write the sent ledger"):
        ledger.mark("job-3", ["c@example.org"])  # a new connection is refused
    own_redis.start()
    ledger.mark("job-4", ["d@example.org"])
    ledger.flush()
    assert [b"d@example.org"] == client.hkeys(names.sent_ledger("job-4"))
    ledger.close()
    client.close()
