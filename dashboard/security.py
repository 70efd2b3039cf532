"""Every request's checks, in one ASGI middleware: the token, and CSRF on every POST.

* With ``MAILFLEET_DASHBOARD_TOKEN`` set, a request needs ``Authorization: Bearer <token>``
  or the session cookie the login form sets (HttpOnly, SameSite=Strict). The cookie holds an
  HMAC of the token, never the token itself. Without either: 401 and the login form.
* Every POST needs the CSRF token (a form field ``csrf`` or the ``X-CSRF-Token`` header)
  equal to the ``mailfleet_csrf`` cookie (double submit: another site can post a form, but
  not read or set our cookie). Without it: 403, and nothing happens.
* Every answer forbids framing and any script or style not served by the dashboard itself.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from http.cookies import SimpleCookie
from urllib.parse import parse_qs

from pydantic import SecretStr
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SESSION_COOKIE = "mailfleet_session"
CSRF_COOKIE = "mailfleet_csrf"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
MAX_BODY = 2 * 1024 * 1024  # a pasted job, or a purge's list of shown letters
OPEN_PATHS = ("/static/", "/login")  # the login form and what it needs
_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}


def session_value(token: SecretStr) -> str:
    """What the session cookie holds: proof of the token that does not reveal it."""
    secret = token.get_secret_value().encode()
    return hmac.new(secret, b"mailfleet-dashboard-session", hashlib.sha256).hexdigest()


def token_matches(given: str, token: SecretStr) -> bool:
    return hmac.compare_digest(given.encode(), token.get_secret_value().encode())


def _cookies(scope: Scope) -> dict[str, str]:
    jar: SimpleCookie = SimpleCookie()
    for name, value in scope.get("headers", []):
        if name == b"cookie":
            try:
                jar.load(value.decode("latin-1"))
            except Exception:  # noqa: S112 (a malformed cookie header counts as none)
                continue
    return {key: morsel.value for key, morsel in jar.items()}


def _header(scope: Scope, wanted: bytes) -> str:
    for name, value in scope.get("headers", []):
        if name == wanted:
            return str(value.decode("latin-1"))
    return ""


async def _plain(send: Send, status: int, text: str, extra: dict[str, str] | None = None) -> None:
    headers = [(b"content-type", b"text/plain; charset=utf-8")]
    headers += [(k.encode(), v.encode()) for k, v in (extra or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": text.encode()})


class Guard:
    """The middleware; ``login_page(scope, csrf)`` renders the 401 body for browsers."""

    def __init__(self, app: ASGIApp, token: SecretStr | None, login_app: ASGIApp) -> None:
        self._app = app
        self._token = token if token is not None and token.get_secret_value() else None
        self._login = login_app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        cookies = _cookies(scope)
        csrf = cookies.get(CSRF_COOKIE) or ""
        new_csrf = "" if csrf else secrets.token_urlsafe(32)
        scope.setdefault("state", {})["csrf"] = csrf or new_csrf
        scope["state"]["auth"] = self._token is not None

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in _HEADERS.items():
                    headers.setdefault(name, value)
                if new_csrf:
                    headers.append(
                        "set-cookie",
                        f"{CSRF_COOKIE}={new_csrf}; Path=/; HttpOnly; SameSite=Strict",
                    )
            await send(message)

        if scope["method"] == "POST":
            body = await _read_body(receive)
            if body is None:
                await _plain(send_with_headers, 413, "request body too large")
                return
            if not (
                csrf and hmac.compare_digest(_posted_csrf(scope, body).encode(), csrf.encode())
            ):
                await _plain(send_with_headers, 403, "CSRF token missing or wrong: reload the page")
                return
            receive = _replay(body)
        path = str(scope.get("path", ""))
        guarded = self._token is not None and not path.startswith(OPEN_PATHS)
        if guarded and not self._authorized(scope, cookies):
            await self._login(scope, receive, send_with_headers)
            return
        await self._app(scope, receive, send_with_headers)

    def _authorized(self, scope: Scope, cookies: dict[str, str]) -> bool:
        assert self._token is not None
        bearer = _header(scope, b"authorization")
        if bearer.lower().startswith("bearer "):
            return token_matches(bearer[7:].strip(), self._token)
        session = cookies.get(SESSION_COOKIE, "")
        return hmac.compare_digest(session.encode(), session_value(self._token).encode())


def _posted_csrf(scope: Scope, body: bytes) -> str:
    if header := _header(scope, CSRF_HEADER.encode()):
        return header
    if _header(scope, b"content-type").startswith("application/x-www-form-urlencoded"):
        values = parse_qs(body.decode("latin-1")).get(CSRF_FIELD)
        return values[0] if values else ""
    return ""


async def _read_body(receive: Receive) -> bytes | None:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive
