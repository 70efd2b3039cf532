"""Suppression: search the list, add an address with a reason, remove one."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from mailfleet.dashboard.pages.common import context_of
from mailfleet.producer.ops.suppression import DEFAULT_REASON, normalized_address
from mailfleet.shared.redis_client import make_redis
from mailfleet.shared.scope import EVERYTHING, Scope
from mailfleet.shared.settings import Settings
from mailfleet.shared.suppression import Suppressed, SuppressionList

SHOWN = 200


def _search(settings: Settings, text: str) -> tuple[list[Suppressed], bool, int]:
    client = make_redis(settings)
    try:
        suppression = SuppressionList(client, settings.names)
        entries, more = suppression.search(text, SHOWN)
        scoped, more_scoped = suppression.search_scoped(text, SHOWN)
        return entries + scoped, more or more_scoped, suppression.size()
    finally:
        client.close()


def _change(
    settings: Settings, address: str, reason: str | None, scope: Scope | None = None
) -> bool:
    client = make_redis(settings)
    try:
        suppression = SuppressionList(client, settings.names)
        if reason is None and scope is not None:
            return suppression.remove_scoped(address, scope)
        if reason is None:
            return suppression.remove(address)
        suppression.add(address, reason)
        return True
    finally:
        client.close()


async def _listing(
    request: Request, text: str, status: int = 200, error: str | None = None
) -> Response:
    context = context_of(request)
    entries, more, size = await run_in_threadpool(_search, context.settings, text)
    return context.renderer.page(
        request,
        "suppression.html",
        status,
        entries=entries,
        more=more,
        size=size,
        q=text,
        error=error,
        default_reason=DEFAULT_REASON,
    )


async def listing(request: Request) -> Response:
    return await _listing(request, request.query_params.get("q", "").strip())


async def add(request: Request) -> Response:
    form = await request.form()
    reason = str(form.get("reason", "")).strip() or DEFAULT_REASON
    try:
        address = normalized_address(str(form.get("address", "")))
    except ValueError as exc:
        return await _listing(request, "", 400, f"cannot suppress that address: {exc}")
    await run_in_threadpool(_change, context_of(request).settings, address, reason)
    return RedirectResponse(f"/suppression?q={address}", status_code=303)


async def remove(request: Request) -> Response:
    form = await request.form()
    address = str(form.get("address", "")).strip().lower()
    scope_text = str(form.get("scope", EVERYTHING)).strip() or EVERYTHING
    try:
        scope = None if scope_text == EVERYTHING else Scope.parse(scope_text)
    except ValueError as exc:
        return await _listing(request, "", 400, str(exc))
    settings = context_of(request).settings
    if not await run_in_threadpool(_change, settings, address, None, scope):
        return await _listing(request, "", 404, f"{address} is not on the suppression list")
    return RedirectResponse("/suppression", status_code=303)
