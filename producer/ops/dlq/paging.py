"""One page of the dead letters that match a selection, read without loading the queue.

A page is read from the head and every letter taken goes back, one by one in the order it
was taken. Where the broker puts it back differs: at its old place (classic queues, as
RabbitMQ documents for requeues), or at the tail, in order (quorum queues of RabbitMQ 3.x).
Either way the queue's order *as a ring* is kept, so the next page is "the letters after the
last one read", found with a :class:`Cursor`: if the head is still the letter the previous
page began with, the letters were put back in place, and the scan skips to the one after
the last read; otherwise they went to the tail, and the head is already the next letter.

How many the queue holds comes from the broker's count, not from reading them all.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime

from mailfleet.producer.ops.dlq.letter import DeadLetter, Selection
from mailfleet.producer.ops.dlq.queue import DeadLetterQueue


def letter_key(letter: DeadLetter) -> str:
    """A short stand-in for a letter's fingerprint, to carry in a link."""
    data = json.dumps(letter.fingerprint, ensure_ascii=False).encode()
    return hashlib.sha256(data).hexdigest()[:20]


@dataclass(frozen=True)
class Cursor:
    """Where the first page began (``origin``: coming round to it ends the ring), and where
    the previous page's scan began (``head``) and ended (``after``)."""

    origin: str
    head: str
    after: str

    def encode(self) -> str:
        text = f"{self.origin}.{self.head}.{self.after}"
        return base64.urlsafe_b64encode(text.encode()).decode()

    @classmethod
    def decode(cls, text: str) -> Cursor | None:
        """The cursor of a link, or None for anything else (the first page then)."""
        try:
            parts = base64.urlsafe_b64decode(text.encode()).decode().split(".")
        except (ValueError, UnicodeDecodeError):
            return None
        return cls(*parts) if len(parts) == 3 and all(parts) else None


@dataclass(frozen=True)
class Page:
    letters: list[DeadLetter]
    in_queue: int  # letters ready in the queue when the scan began
    scanned: int  # letters the scan read for this page
    next_cursor: Cursor | None  # None: the scan reached the end of the queue


def read_page(
    queue: DeadLetterQueue,
    selection: Selection,
    *,
    size: int = 50,
    cursor: Cursor | None = None,
    budget: int | None = None,
) -> Page:
    """Up to ``size`` matches, from the head or after ``cursor``, in queue order. With a
    ``budget``, the scan stops after that many letters past the previous page even when
    fewer match, so a page with rare matches costs no more than that; its cursor goes on
    from there."""
    now = datetime.now(UTC)
    letters: list[DeadLetter] = []
    skipping = False
    first: DeadLetter | None = None
    last: DeadLetter | None = None
    read = fresh = 0
    with queue.browse() as scan:
        for letter in scan:
            if budget is not None and fresh >= budget:
                break  # handed back unread; the next page begins with it
            read += 1
            key = letter_key(letter)
            if first is None:
                first = letter
                # Put back in place: skip what the previous page read.
                skipping = cursor is not None and key == cursor.head
            elif cursor is not None and key == cursor.origin and not skipping:
                last = None  # round the ring to where the first page began: the end
                break
            last = letter
            if skipping:
                skipping = key != cursor.after if cursor is not None else False
                continue
            fresh += 1
            if selection.matches(letter, now):
                letters.append(letter)
                if len(letters) >= size:
                    break
        else:
            last = None  # read to the end: no next page
        in_queue = scan.ready
    next_cursor = None
    if first is not None and last is not None and read < in_queue:
        origin = cursor.origin if cursor is not None else letter_key(first)
        next_cursor = Cursor(origin, letter_key(first), letter_key(last))
    return Page(letters, in_queue, read, next_cursor)


def find_letters(
    queue: DeadLetterQueue, job_id: str, *, at_most: int = 1, budget: int | None = None
) -> list[DeadLetter]:
    """The first ``at_most`` letters of ``job_id``, stopping there (a detail view): the
    scan reads the queue up to them, or up to ``budget`` letters, the whole queue only
    when there are fewer and no budget."""
    selection = Selection(ids=frozenset({job_id}))
    return read_page(queue, selection, size=at_most, budget=budget).letters
