"""The consumer's settles, on pika's thread: one cumulative ``basic_ack(multiple=True)`` up to
the first tag still held, single acks above it, nacks with requeue, and nothing for a
delivery that came on a connection since lost. The channel and connection are fakes that
record frames and hold the callbacks other threads hand to pika's thread."""

from __future__ import annotations

from typing import cast

import pika
from pika.adapters.blocking_connection import BlockingChannel
from pika.spec import Basic

from mailfleet.shared.job import Lane
from mailfleet.shared.settings import Settings
from mailfleet.worker.broker.consumer import LaneConsumer
from mailfleet.worker.inbox import Delivery
from tests.unit.fakes import FakeChannel, FakeConnection


class Wired:
    """A LaneConsumer on a fake connection: what ``connect`` sets up, without a broker."""

    def __init__(self) -> None:
        self.received: list[Delivery] = []
        self.consumer = LaneConsumer(Settings(namespace="unit"), self.received.append)
        self.connection = FakeConnection()
        self.channel = FakeChannel()
        self.reconnect()

    def reconnect(self) -> None:
        """A new connection and channel, the next generation (its tags start at 1 again)."""
        self.connection, self.channel = FakeConnection(), FakeChannel()
        consumer = self.consumer
        consumer._connection = cast(pika.BlockingConnection, self.connection)
        consumer._channel = cast(BlockingChannel, self.channel)
        consumer._unsettled.clear()
        consumer.generation += 1

    def deliver(self, *tags: int) -> list[Delivery]:
        """Deliveries ``tags`` arriving on the current channel, as pika hands them over."""
        channel = cast(BlockingChannel, self.channel)
        for tag in tags:
            self.consumer._on_message(
                Lane.BULK,
                self.consumer.generation,
                channel,
                Basic.Deliver(delivery_tag=tag),
                pika.BasicProperties(),
                b"{}",
            )
        return self.received[-len(tags) :]

    def flush(self) -> list[tuple[str, int, bool]]:
        """Run pika's pending callbacks; the frames they sent."""
        before = len(self.channel.frames)
        self.connection.run_callbacks()
        return self.channel.frames[before:]


def by_tag(deliveries: list[Delivery]) -> dict[int, Delivery]:
    return {delivery.delivery_tag: delivery for delivery in deliveries}


def test_all_acked_is_one_cumulative_ack() -> None:
    wired = Wired()
    d = by_tag(wired.deliver(1, 2, 3, 4, 5))
    for tag in (3, 1, 5, 2, 4):
        wired.consumer.ack(d[tag])

    assert 1 == len(wired.connection.callbacks)  # one wake-up for all five
    assert [("ack", 5, True)] == wired.flush()


def test_a_tag_still_held_stops_the_cumulative_ack_and_those_above_go_singly() -> None:
    wired = Wired()
    d = by_tag(wired.deliver(1, 2, 3, 4, 5))
    for tag in (1, 2, 4):
        wired.consumer.ack(d[tag])
    assert [("ack", 2, True), ("ack", 4, False)] == wired.flush()

    wired.consumer.ack(d[3])  # 4 is settled already, 5 still held
    assert [("ack", 3, True)] == wired.flush()
    wired.consumer.ack(d[5])
    assert [("ack", 5, True)] == wired.flush()


def test_an_ack_above_the_lowest_held_tag_is_a_single_ack() -> None:
    wired = Wired()
    d = by_tag(wired.deliver(1, 2))
    wired.consumer.ack(d[2])
    assert [("ack", 2, False)] == wired.flush()


def test_requeues_are_nacks_with_requeue_and_the_cumulative_ack_passes_them() -> None:
    wired = Wired()
    d = by_tag(wired.deliver(1, 2, 3, 4))
    wired.consumer.ack(d[1])
    wired.consumer.requeue(d[2])
    wired.consumer.ack(d[3])  # 4 still held

    assert [("nack", 2, True), ("ack", 3, True)] == wired.flush()


def test_a_tag_requeued_earlier_no_longer_holds_acks_back() -> None:
    wired = Wired()
    d = by_tag(wired.deliver(1, 2, 3))
    wired.consumer.requeue(d[1])
    assert [("nack", 1, True)] == wired.flush()
    wired.consumer.ack(d[3])
    wired.consumer.ack(d[2])
    assert [("ack", 3, True)] == wired.flush()


def test_ack_many_settles_a_batch_in_one_wake_up() -> None:
    wired = Wired()
    deliveries = wired.deliver(1, 2, 3)
    wired.consumer.ack_many(deliveries)

    assert 1 == len(wired.connection.callbacks)
    assert [("ack", 3, True)] == wired.flush()


def test_a_settle_after_a_flush_wakes_pika_again() -> None:
    wired = Wired()
    d = by_tag(wired.deliver(1, 2))
    wired.consumer.ack(d[1])
    wired.flush()
    wired.consumer.ack(d[2])

    assert 1 == len(wired.connection.callbacks)
    assert [("ack", 2, True)] == wired.flush()


def test_settles_of_an_old_connection_are_dropped() -> None:
    """Its messages were requeued by the broker; their tags mean nothing on the new one."""
    wired = Wired()
    old = by_tag(wired.deliver(1, 2))
    wired.reconnect()
    new = by_tag(wired.deliver(1))
    wired.consumer.ack(old[1])
    wired.consumer.requeue(old[2])

    assert [] == wired.connection.callbacks
    wired.consumer.ack(new[1])
    assert [("ack", 1, True)] == wired.flush()


def test_a_settle_queued_before_a_reconnect_is_dropped_at_the_flush() -> None:
    wired = Wired()
    old = wired.deliver(1)
    wired.consumer.ack(old[0])
    pending = wired.connection.callbacks
    wired.consumer.generation += 1  # reconnected before pika's thread ran the flush
    for callback in pending:
        callback()

    assert [] == wired.channel.frames


def test_a_closed_channel_gets_no_frames() -> None:
    wired = Wired()
    d = wired.deliver(1)
    wired.consumer.ack(d[0])
    wired.channel.is_open = False

    assert [] == wired.flush()


def test_without_a_connection_a_settle_is_a_no_op() -> None:
    consumer = LaneConsumer(Settings(namespace="unit"), lambda delivery: None)
    delivery = Delivery(Lane.BULK, 1, 0, b"{}", pika.BasicProperties())
    consumer.ack(delivery)
    consumer.requeue(delivery)
