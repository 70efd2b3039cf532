"""Replay and purge from the dead-letter table, through the CLI's machinery
(``producer/ops/dlq``): a GET shows the dry run, and the confirming POST carries the
fingerprints of exactly the letters shown, so a letter that dies meanwhile (even under an id
shown) is neither replayed nor deleted unseen; replay acks a letter only after the broker
confirmed its copy.
"""

from __future__ import annotations

import json
from collections import Counter

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from mailfleet.dashboard.pages.common import context_of
from mailfleet.dashboard.pages.dead_letters import filters_of, query_of, queue_of, selection_of
from mailfleet.producer.ops.dlq.filters import LANES, FilterError
from mailfleet.producer.ops.dlq.letter import REASONS, Selection
from mailfleet.producer.ops.dlq.report import Fingerprint, PurgeReport, ReplayReport
from mailfleet.shared.recipients import RecipientFilter
from mailfleet.shared.redis_client import make_redis
from mailfleet.shared.settings import Settings

ACTION_LIMIT = 500  # letters one replay or purge from the dashboard acts on at most


def encode_shown(fingerprints: list[Fingerprint]) -> str:
    return json.dumps([[*fp[:4], list(fp[4])] for fp in fingerprints])


def decode_shown(text: str) -> Counter[Fingerprint]:
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
        with queue_of(settings) as queue:
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
    with queue_of(settings) as queue:
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
    filters = filters_of(request.query_params)
    try:
        selection = selection_of(filters)
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
        query=query_of(filters),
        shown=encode_shown(report.fingerprints),
        limit=ACTION_LIMIT,
    )


async def replay(request: Request) -> Response:
    return await _act(request, "replay")


async def purge(request: Request) -> Response:
    return await _act(request, "purge")


async def _act(request: Request, action: str) -> Response:
    context = context_of(request)
    form = await request.form()
    filters = filters_of(form)
    try:
        selection = selection_of(filters)
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
    shown = decode_shown(str(form.get("shown", "")))
    if not shown:
        return context.renderer.page(
            request,
            "done.html",
            400,
            action=action,
            report=None,
            query=query_of(filters),
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
        query=query_of(filters),
        error=getattr(report, "error", None),
    )
