"""Dead letters: the filtered, paged table and one letter's page (replay and purge are in
``dlq_actions.py``), read through ``producer/ops/dlq``."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, ImmutableMultiDict
from starlette.requests import Request
from starlette.responses import Response

from mailfleet.dashboard.pages.common import context_of
from mailfleet.producer.connection import open_connection
from mailfleet.producer.ops.dlq.filters import LANES, FilterError, build_selection
from mailfleet.producer.ops.dlq.letter import REASONS, DeadLetter, Selection
from mailfleet.producer.ops.dlq.output import show_record, summary_row
from mailfleet.producer.ops.dlq.paging import Cursor, Page, find_letters, read_page
from mailfleet.producer.ops.dlq.queue import DeadLetterQueue
from mailfleet.shared.settings import Settings

PAGE_SIZE = 50
# Letters one table page may read: it renders in well under 200 ms however rare the
# matches (a filtered page then says how far it read and goes on from there).
SCAN_BUDGET = 150
_FILTERS = ("reason", "lane", "domain", "id", "older_than")

Params = ImmutableMultiDict[str, Any] | FormData


@contextlib.contextmanager
def queue_of(settings: Settings) -> Iterator[DeadLetterQueue]:
    connection = open_connection(settings)
    try:
        yield DeadLetterQueue(connection, settings)
    finally:
        connection.release()


def filters_of(params: Params) -> dict[str, list[str]]:
    """The filter values given (blank ones dropped), to show and to pass on."""
    return {
        name: [str(v) for v in params.getlist(name) if str(v).strip()]
        for name in _FILTERS
        if any(str(v).strip() for v in params.getlist(name))
    }


def selection_of(filters: dict[str, list[str]]) -> Selection:
    older = filters.get("older_than", [""])
    return build_selection(
        reasons=filters.get("reason"),
        lanes=filters.get("lane"),
        domains=filters.get("domain"),
        ids=filters.get("id"),
        older_than=older[0] if older else None,
    )


def query_of(filters: dict[str, list[str]], **extra: Any) -> str:
    pairs = [(name, value) for name, values in filters.items() for value in values]
    pairs += [(name, str(value)) for name, value in extra.items()]
    return urlencode(pairs)


def _number(params: Params) -> int:
    text = str(params.get("page", "1"))
    return int(text) if text.isdigit() and int(text) > 0 else 1


def _page(settings: Settings, selection: Selection, cursor: Cursor | None) -> Page:
    with queue_of(settings) as queue:
        return read_page(queue, selection, size=PAGE_SIZE, cursor=cursor, budget=SCAN_BUDGET)


async def table(request: Request) -> Response:
    context = context_of(request)
    filters = filters_of(request.query_params)
    base: dict[str, Any] = {"filters": filters, "reasons": REASONS, "lanes": LANES}
    try:
        selection = selection_of(filters)
    except FilterError as exc:
        return context.renderer.page(request, "dead_letters.html", 400, error=str(exc), **base)
    cursor = Cursor.decode(str(request.query_params.get("after", "")))
    number = _number(request.query_params) if cursor else 1
    page = await run_in_threadpool(_page, context.settings, selection, cursor)
    context.seen.keep(page.letters)
    # Each row carries the letter's detail too: the scan holds the letters now, while a
    # detail view of its own would read the queue again up to the letter.
    rows = [{**summary_row(letter), "record": _inline(letter)} for letter in page.letters]
    following = page.next_cursor
    return context.renderer.page(
        request,
        "dead_letters.html",
        page=page,
        rows=rows,
        query=query_of(filters),
        number=number,
        next_query=query_of(filters, after=following.encode(), page=number + 1)
        if following
        else None,
        **base,
    )


INLINE_CHARS = 20_000  # of a job shown in the table; the letter's own page shows all of it


def _inline(letter: DeadLetter) -> dict[str, Any]:
    record = show_record(letter)
    shown = json.dumps(record["job"], indent=2, ensure_ascii=False) if record["job"] else ""
    shown = shown or record["body"]
    record["shown"] = shown[:INLINE_CHARS]
    record["cut"] = len(shown) > INLINE_CHARS
    return record


def _find(settings: Settings, job_id: str) -> list[DeadLetter]:
    with queue_of(settings) as queue:
        return find_letters(queue, job_id, budget=SCAN_BUDGET)


async def detail(request: Request) -> Response:
    """One letter: as the table read it lately, else read from near the head of the queue
    (see ``dashboard/seen_letters.py``)."""
    context = context_of(request)
    job_id = request.query_params.get("id", "")
    seen = context.seen.get(job_id) if job_id else None
    age: float | None = None
    if seen is not None:
        letters, age = seen
    else:
        letters = await run_in_threadpool(_find, context.settings, job_id) if job_id else []
    if not letters:
        return context.renderer.page(
            request,
            "letter.html",
            404,
            job_id=job_id,
            records=[],
            error=f"no dead letter with id {job_id!r} among the {SCAN_BUDGET} at the head of "
            "the queue; filter the table by this id to search the whole queue page by page",
        )
    records = [show_record(letter) for letter in letters]
    return context.renderer.page(
        request, "letter.html", job_id=job_id, records=records, read_ago=age
    )
