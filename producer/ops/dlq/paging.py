"""One page of the dead letters that match a selection, read without loading the queue.

The scan stops as soon as the page is full and one more match shows there is a next page;
every letter it took goes back on its channel's close. How many the queue holds comes
from the broker's count, not from reading them all.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from mailfleet.producer.ops.dlq.letter import DeadLetter, Selection
from mailfleet.producer.ops.dlq.queue import DeadLetterQueue


@dataclass(frozen=True)
class Page:
    letters: list[DeadLetter]
    offset: int  # matches skipped before the first on this page
    in_queue: int  # letters ready in the queue when the scan began
    scanned: int  # letters the scan read to fill the page
    more: bool  # another match follows this page

    @property
    def next_offset(self) -> int | None:
        return self.offset + len(self.letters) if self.more else None


def read_page(
    queue: DeadLetterQueue, selection: Selection, *, offset: int = 0, size: int = 50
) -> Page:
    """The ``size`` matches after the first ``offset`` ones, in queue order."""
    now = datetime.now(UTC)
    letters: list[DeadLetter] = []
    matched, more = 0, False
    with queue.browse() as scan:
        for letter in scan:
            if not selection.matches(letter, now):
                continue
            matched += 1
            if matched <= offset:
                continue
            if len(letters) >= size:
                more = True
                break
            letters.append(letter)
        return Page(letters, offset, scan.ready, scan.total, more)


def find_letters(queue: DeadLetterQueue, job_id: str, *, at_most: int = 10) -> list[DeadLetter]:
    """The first ``at_most`` letters of ``job_id``, stopping there (a detail view)."""
    return read_page(queue, Selection(ids=frozenset({job_id})), size=at_most).letters
