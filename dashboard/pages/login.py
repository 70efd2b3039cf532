"""The login form: the token, posted once, becomes an HttpOnly, SameSite=Strict cookie."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from mailfleet.dashboard.pages.common import context_of
from mailfleet.dashboard.security import SESSION_COOKIE, session_value, token_matches


def _local(target: str) -> str:
    """Only a path on this dashboard (no ``//host`` or scheme): no open redirect."""
    return target if target.startswith("/") and not target.startswith("//") else "/"


async def form(request: Request) -> Response:
    """The login page: 401 for anything asked without the token (the guard sends it)."""
    context = context_of(request)
    target = request.url.path if request.url.path != "/login" else "/"
    status = 200 if request.url.path == "/login" else 401
    response = context.renderer.page(request, "login.html", status, target=target)
    if status == 401:
        response.headers["www-authenticate"] = 'Bearer realm="mailfleet"'
    return response


async def login(request: Request) -> Response:
    context = context_of(request)
    token = context.settings.dashboard_token
    posted = await request.form()
    target = _local(str(posted.get("next", "/")))
    if token is None or not token_matches(str(posted.get("token", "")), token):
        return context.renderer.page(request, "login.html", 401, target=target, error="wrong token")
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        SESSION_COOKIE, session_value(token), httponly=True, samesite="strict", path="/"
    )
    return response


async def logout(request: Request) -> Response:
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
