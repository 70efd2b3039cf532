"""The one-click unsubscribe endpoint (RFC 8058), a small Starlette app.

- ``POST /u/TOKEN`` with the form field ``List-Unsubscribe=One-Click`` (multipart or
  urlencoded, as mailbox providers send it) suppresses the token's recipient for its sender
  domain and list, and answers 200. No login: the token is the proof.
- ``GET /u/TOKEN`` shows a page with a confirm button and changes nothing, because link
  scanners and previews follow GETs.
- A token that is not genuine gets 404 and changes nothing; a genuine one without the form
  field gets 400. When Redis cannot be reached the answer is 503, so the sender retries.
"""

from __future__ import annotations

import html

import structlog
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from mailfleet.shared.errors import RedisUnavailable
from mailfleet.shared.scope import Scope
from mailfleet.shared.suppression import SuppressionList
from mailfleet.shared.unsubscribe_token import UnsubscribeTokens

log = structlog.get_logger("mailfleet.unsubscribe")

FIELD, ONE_CLICK = "List-Unsubscribe", "One-Click"
REASON = "one-click unsubscribe"
_NO_STORE = {"Cache-Control": "no-store"}
_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Unsubscribe</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body><h1>Unsubscribe</h1>
<p>Stop the {list} mail from {domain} to {address}?</p>
<form method="post" action="">
<input type="hidden" name="List-Unsubscribe" value="One-Click">
<button type="submit">Unsubscribe</button>
</form></body></html>
"""
_DONE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Unsubscribed</title></head>
<body><h1>Unsubscribed</h1><p>{address} gets no more {list} mail from {domain}.</p></body></html>
"""


def _fill(page: str, address: str, scope: Scope) -> str:
    return page.format(
        address=html.escape(address),
        domain=html.escape(scope.sender_domain),
        list=html.escape(scope.list_name),
    )


def build_app(tokens: UnsubscribeTokens, suppression: SuppressionList) -> Starlette:
    def named(request: Request) -> tuple[str, Scope] | None:
        return tokens.read(str(request.path_params["token"]))

    async def confirm_page(request: Request) -> Response:
        found = named(request)
        if found is None:
            return PlainTextResponse("not found", status_code=404)
        return HTMLResponse(_fill(_PAGE, *found), headers=_NO_STORE)

    async def unsubscribe(request: Request) -> Response:
        found = named(request)
        if found is None:
            return PlainTextResponse("not found", status_code=404)
        async with request.form(max_files=0, max_fields=8) as form:
            one_click = form.get(FIELD) == ONE_CLICK
        if not one_click:
            return PlainTextResponse(f"the body must be {FIELD}={ONE_CLICK}", status_code=400)
        address, scope = found
        try:
            await run_in_threadpool(suppression.add_scoped, address, scope, REASON)
        except RedisUnavailable:
            log.warning("unsubscribe_unavailable", domain=scope.sender_domain)
            return PlainTextResponse("try again later", status_code=503)
        log.info("unsubscribed", domain=scope.sender_domain, list=scope.list_name)
        return HTMLResponse(_fill(_DONE, address, scope), headers=_NO_STORE)

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok")

    return Starlette(
        routes=[
            Route("/u/{token}", confirm_page, methods=["GET"]),
            Route("/u/{token}", unsubscribe, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ]
    )
