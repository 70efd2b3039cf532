"""The inbox senders take batches from: transactional first, parked deliveries not before
their time, and a wake-up for every sender that has work."""

from __future__ import annotations

import threading
import time

import pika

from mailfleet.shared.job import Lane
from mailfleet.worker.inbox import Delivery, Inbox


def delivery(tag: int, lane: Lane = Lane.BULK) -> Delivery:
    return Delivery(lane, tag, 1, b"{}", pika.BasicProperties())


def tags(deliveries: list[Delivery]) -> list[int]:
    return [d.delivery_tag for d in deliveries]


def test_a_batch_takes_transactional_first_then_bulk_in_order_up_to_the_limit() -> None:
    inbox = Inbox()
    for tag in (1, 2, 3):
        inbox.put(delivery(tag))
    inbox.put(delivery(9, Lane.TRANSACTIONAL))

    assert [9, 1, 2] == tags(inbox.take_batch(3, timeout=0))
    assert (1, 3) == (inbox.waiting, inbox.in_flight)
    inbox.done(3)
    assert [3] == tags(inbox.take_batch(3, timeout=0))
    assert [] == inbox.take_batch(3, timeout=0)


def test_a_parked_delivery_is_not_taken_before_its_time() -> None:
    inbox = Inbox()
    inbox.park(delivery(1), time.monotonic() + 0.3)
    inbox.put(delivery(2))

    assert [2] == tags(inbox.take_batch(5, timeout=0))
    started = time.monotonic()
    assert [1] == tags(inbox.take_batch(5, timeout=2))
    assert 0.2 <= time.monotonic() - started < 1.5


def test_every_waiting_sender_with_work_is_woken() -> None:
    """Each put wakes one waiting sender (not all of them): every delivery is taken."""
    inbox = Inbox()
    taken: list[list[int]] = []
    lock = threading.Lock()

    def sender() -> None:
        batch = inbox.take_batch(2, timeout=5)
        with lock:
            taken.append(tags(batch))

    senders = [threading.Thread(target=sender) for _ in range(3)]
    for thread in senders:
        thread.start()
    time.sleep(0.1)  # all three are waiting
    for tag in range(1, 6):
        inbox.put(delivery(tag))
    for thread in senders:
        thread.join(timeout=5)

    assert all(batch for batch in taken)
    left = tags(inbox.take_batch(5, timeout=0))
    assert [1, 2, 3, 4, 5] == sorted([tag for batch in taken for tag in batch] + left)


def test_a_bulk_sender_waiting_for_a_token_hears_of_transactional_mail() -> None:
    inbox = Inbox()
    heard: list[bool] = []
    waiter = threading.Thread(target=lambda: heard.append(inbox.wait_for_transactional(5)))
    waiter.start()
    time.sleep(0.05)
    inbox.put(delivery(1))  # bulk: no reason to step aside
    time.sleep(0.05)
    assert [] == heard
    inbox.put(delivery(2, Lane.TRANSACTIONAL))
    waiter.join(timeout=5)
    assert [True] == heard


def test_first_in_first_out_within_each_lane() -> None:
    inbox = Inbox()
    for tag in (1, 2, 3):
        inbox.put(delivery(tag))
    for tag in (7, 8):
        inbox.put(delivery(tag, Lane.TRANSACTIONAL))

    assert [7, 8, 1, 2, 3] == tags(inbox.take_batch(10, timeout=0))


def test_a_parked_delivery_goes_to_the_back_of_its_lane() -> None:
    inbox = Inbox()
    inbox.put(delivery(1))
    inbox.put(delivery(2))
    [first] = inbox.take_batch(1, timeout=0)
    inbox.park(first, time.monotonic())  # due at once, but behind 2
    inbox.put(delivery(3))

    assert [2, 1, 3] == tags(inbox.take_batch(10, timeout=0))


def test_a_transactional_delivery_not_yet_due_does_not_hold_bulk_back() -> None:
    inbox = Inbox()
    inbox.park(delivery(1, Lane.TRANSACTIONAL), time.monotonic() + 60)
    inbox.put(delivery(2))

    assert [2] == tags(inbox.take_batch(10, timeout=0))
    assert 1 == inbox.waiting


def test_taken_deliveries_count_in_flight_until_done() -> None:
    inbox = Inbox()
    for tag in range(1, 6):
        inbox.put(delivery(tag))

    assert [1, 2] == tags(inbox.take_batch(2, timeout=0))
    assert (3, 2) == (inbox.waiting, inbox.in_flight)
    assert [3, 4] == tags(inbox.take_batch(2, timeout=0))
    assert 4 == inbox.in_flight
    inbox.done(2)
    inbox.done()
    assert (1, 1) == (inbox.waiting, inbox.in_flight)


def test_ready_only_with_a_delivery_that_is_due() -> None:
    inbox = Inbox()
    assert not inbox.ready()
    inbox.park(delivery(1), time.monotonic() + 60)
    assert not inbox.ready()
    inbox.put(delivery(2))
    assert inbox.ready()


def test_an_empty_take_waits_out_its_timeout() -> None:
    inbox = Inbox()
    started = time.monotonic()
    assert [] == inbox.take_batch(5, timeout=0.1)
    assert 0.09 <= time.monotonic() - started < 1.0


def test_drain_empties_the_inbox_parked_ones_included_transactional_first() -> None:
    inbox = Inbox()
    inbox.put(delivery(1))
    inbox.park(delivery(2), time.monotonic() + 60)
    inbox.put(delivery(3, Lane.TRANSACTIONAL))
    inbox.put(delivery(4))
    [taken] = inbox.take_batch(1, timeout=0)

    assert 3 == taken.delivery_tag
    assert [1, 2, 4] == tags(inbox.drain())
    assert (0, 1) == (inbox.waiting, inbox.in_flight)  # what was taken is its sender's
    assert [] == inbox.take_batch(5, timeout=0)


def test_wait_for_transactional_is_true_at_once_when_one_is_ready() -> None:
    inbox = Inbox()
    inbox.put(delivery(1, Lane.TRANSACTIONAL))
    started = time.monotonic()
    assert inbox.wait_for_transactional(5)
    assert time.monotonic() - started < 2.5


def test_wait_for_transactional_times_out_for_bulk_or_a_transactional_not_yet_due() -> None:
    inbox = Inbox()
    inbox.put(delivery(1))
    inbox.park(delivery(2, Lane.TRANSACTIONAL), time.monotonic() + 60)
    started = time.monotonic()
    assert not inbox.wait_for_transactional(0.1)
    assert time.monotonic() - started >= 0.09


def test_a_transactional_delivery_parked_due_now_wakes_a_bulk_sender_waiting() -> None:
    inbox = Inbox()
    heard: list[bool] = []
    waiter = threading.Thread(target=lambda: heard.append(inbox.wait_for_transactional(5)))
    waiter.start()
    time.sleep(0.05)
    inbox.park(delivery(1, Lane.TRANSACTIONAL), time.monotonic())
    waiter.join(timeout=5)
    assert [True] == heard
