"""Dead letters: a filtered, paged table, one letter's detail, replay and purge.

Replay and purge go through the CLI's machinery (``producer/ops/dlq``): a GET shows the dry
run, and the confirming POST carries the fingerprints of exactly the letters shown, so a
letter that dies meanwhile (even under an id shown) is neither replayed nor deleted unseen;
replay acks a letter only after the broker confirmed its copy.
"""

from __future__ import annotations

import contextlib
import json
from collections import Counter
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
from mailfleet.producer.ops.dlq.report import Fingerprint, PurgeReport, ReplayReport
from mailfleet.shared.recipients import RecipientFilter
from mailfleet.shared.redis_client import make_redis
from mailfleet.shared.settings import Settings

PAGE_SIZE = 50
ACTION_LIMIT = 500  # letters one replay or purge from the dashboard acts on at most
_FILTERS = ("reason", "lane", "domain", "id", "older_than")

Params = ImmutableMultiDict[str, Any] | FormData


@contextlib.contextmanager
def _queue(settings: Settings) -> Iterator[DeadLetterQueue]:
    connection = open_connection(settings)
    try:
        yield DeadLetterQueue(connection, settings)
    finally:
        connection.release()


def _filters(params: Params) -> dict[str, list[str]]:
    """The filter values given (blank ones dropped), to show and to pass on."""
    return {
        name: [str(v) for v in params.getlist(name) if str(v).strip()]
        for name in _FILTERS
        if any(str(v).strip() for v in params.getlist(name))
    }


def _selection(filters: dict[str, list[str]]) -> Selection:
    older = filters.get("older_than", [""])
    return build_selection(
        reasons=filters.get("reason"),
        lanes=filters.get("lane"),
        domains=filters.get("domain"),
        ids=filters.get("id"),
        older_than=older[0] if older else None,
    )


def _query(filters: dict[str, list[str]], **extra: Any) -> str:
    pairs = [(name, value) for name, values in filters.items() for value in values]
    pairs += [(name, str(value)) for name, value in extra.items()]
    return urlencode(pairs)


def _number(params: Params) -> int:
    text = str(params.get("page", "1"))
    return int(text) if text.isdigit() and int(text) > 0 else 1


def _page(settings: Settings, selection: Selection, cursor: Cursor | None) -> Page:
    with _queue(settings) as queue:
        return read_page(queue, selection, size=PAGE_SIZE, cursor=cursor)


async def table(request: Request) -> Response:
    context = context_of(request)
    filters = _filters(request.query_params)
    base: dict[str, Any] = {"filters": filters, "reasons": REASONS, "lanes": LANES}
    try:
        selection = _selection(filters)
    except FilterError as exc:
        return context.renderer.page(request, "dead_letters.html", 400, error=str(exc), **base)
    cursor = Cursor.decode(str(request.query_params.get("after", "")))
    number = _number(request.query_params) if cursor else 1
    page = await run_in_threadpool(_page, context.settings, selection, cursor)
    rows = [summary_row(letter) for letter in page.letters]
    following = page.next_cursor
    return context.renderer.page(
        request,
        "dead_letters.html",
        page=page,
        rows=rows,
        query=_query(filters),
        number=number,
        next_query=_query(filters, after=following.encode(), page=number + 1)
        if following
        else None,
        **base,
    )


def _find(settings: Settings, job_id: str) -> list[DeadLetter]:
    with _queue(settings) as queue:
        return find_letters(queue, job_id)


async def detail(request: Request) -> Response:
    context = context_of(request)
    job_id = request.query_params.get("id", "")
    letters = await run_in_threadpool(_find, context.settings, job_id) if job_id else []
    if not letters:
        return context.renderer.page(
            request,
            "letter.html",
            404,
            job_id=job_id,
            records=[],
            error=f"no dead letter with id {job_id!r}",
        )
    records = [show_record(letter) for letter in letters]
    return context.renderer.page(request, "letter.html", job_id=job_id, records=records)


def _encode_shown(fingerprints: list[Fingerprint]) -> str:
    return json.dumps([[*fp[:4], list(fp[4])] for fp in fingerprints])


def _decode_shown(text: str) -> Counter[Fingerprint]:
    """The fingerprints a confirm form carried back; anything else is no letter at all."""
    try:
        items = json.loads(text)
    except json.JSONDecodeError:
        return Counter()
    shown: Counter[Fingerprint] = Counter()
    for item in items if isinstance(items, list) else []:
        if isinstance(item, list) and len(item) == 5 and isinstance(item[4], list):
            job_id, failed, reason, error, recipients = item
            fingerprint = (str(job_id), str(failed), str(reason), str(error))
            shown[(*fingerprint, tuple(str(r) for r in recipients))] += 1
    return shown


def _replay(
    settings: Settings, selection: Selection, *, dry_run: bool, only: Counter[Fingerprint] | None
) -> ReplayReport:
    client = make_redis(settings)
    try:
        with _queue(settings) as queue:
            return queue.replay(
                selection,
                RecipientFilter.reading(client, settings.names),
                limit=ACTION_LIMIT,
                dry_run=dry_run,
                only=only,
            )
    finally:
        client.close()


def _purge(
    settings: Settings, selection: Selection, *, dry_run: bool, only: Counter[Fingerprint] | None
) -> PurgeReport:
    with _queue(settings) as queue:
        if only is None:
            return queue.purge(selection, limit=ACTION_LIMIT, dry_run=dry_run)
        return queue.purge(selection, only=only)


async def _run(
    action: str, settings: Settings, selection: Selection, only: Counter[Fingerprint] | None
) -> ReplayReport | PurgeReport:
    """The dry run (no ``only``) or the confirmed action on the letters ``only`` names."""
    dry_run = only is None
    if action == "replay":
        return await run_in_threadpool(_replay, settings, selection, dry_run=dry_run, only=only)
    return await run_in_threadpool(_purge, settings, selection, dry_run=dry_run, only=only)


async def replay_preview(request: Request) -> Response:
    return await _preview(request, "replay")


async def purge_preview(request: Request) -> Response:
    return await _preview(request, "purge")


async def _preview(request: Request, action: str) -> Response:
    """The dry run, and a form to confirm it for exactly the letters it found."""
    context = context_of(request)
    filters = _filters(request.query_params)
    try:
        selection = _selection(filters)
    except FilterError as exc:
        return context.renderer.page(
            request,
            "dead_letters.html",
            400,
            error=str(exc),
            filters=filters,
            reasons=REASONS,
            lanes=LANES,
        )
    report = await _run(action, context.settings, selection, None)
    return context.renderer.page(
        request,
        "confirm.html",
        action=action,
        report=report,
        described=selection.describe(),
        filters=filters,
        query=_query(filters),
        shown=_encode_shown(report.fingerprints),
        limit=ACTION_LIMIT,
    )


async def replay(request: Request) -> Response:
    return await _act(request, "replay")


async def purge(request: Request) -> Response:
    return await _act(request, "purge")


async def _act(request: Request, action: str) -> Response:
    context = context_of(request)
    form = await request.form()
    filters = _filters(form)
    try:
        selection = _selection(filters)
    except FilterError as exc:
        return context.renderer.page(
            request,
            "dead_letters.html",
            400,
            error=str(exc),
            filters=filters,
            reasons=REASONS,
            lanes=LANES,
        )
    shown = _decode_shown(str(form.get("shown", "")))
    if not shown:
        return context.renderer.page(
            request,
            "done.html",
            400,
            action=action,
            report=None,
            query=_query(filters),
            error="nothing was shown to confirm: open the preview again",
        )
    report = await _run(action, context.settings, selection, shown)
    failed = isinstance(report, ReplayReport) and bool(report.error or report.failed)
    return context.renderer.page(
        request,
        "done.html",
        500 if failed else 200,
        action=action,
        report=report,
        query=_query(filters),
        error=getattr(report, "error", None),
    )
