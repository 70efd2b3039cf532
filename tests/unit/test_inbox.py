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
