"""The dashboard's ASGI app: its routes, static files and the guard around them."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp

from mailfleet.dashboard.pages import (
    dead_letters,
    dlq_actions,
    events,
    limits,
    login,
    overview,
    suppression,
)
from mailfleet.dashboard.pages.common import Context, context_of
from mailfleet.dashboard.rendering import STATIC_DIR, Renderer
from mailfleet.dashboard.security import Guard
from mailfleet.shared.errors import MailfleetError
from mailfleet.shared.settings import Settings

ROUTES = [
    Route("/", overview.overview),
    Route("/dead-letters", dead_letters.table),
    Route("/dead-letters/letter", dead_letters.detail),
    Route("/dead-letters/replay", dlq_actions.replay_preview, methods=["GET"]),
    Route("/dead-letters/replay", dlq_actions.replay, methods=["POST"]),
    Route("/dead-letters/purge", dlq_actions.purge_preview, methods=["GET"]),
    Route("/dead-letters/purge", dlq_actions.purge, methods=["POST"]),
    Route("/suppression", suppression.listing),
    Route("/suppression/add", suppression.add, methods=["POST"]),
    Route("/suppression/remove", suppression.remove, methods=["POST"]),
    Route("/limits", limits.limits),
    Route("/limits/explain", limits.explain, methods=["POST"]),
    Route("/events", events.page),
    Route("/events/stream", events.stream),
    Route("/login", login.form, methods=["GET"]),
    Route("/login", login.login, methods=["POST"]),
    Route("/logout", login.logout, methods=["POST"]),
    # Strict editable installs link each file: follow those links (the folder is ours).
    Mount("/static", StaticFiles(directory=STATIC_DIR, follow_symlink=True), name="static"),
]


async def _unavailable(request: Request, exc: Exception) -> Response:
    """RabbitMQ or Redis trouble: the page says which, the dashboard stays up."""
    return context_of(request).renderer.page(request, "error.html", 503, error=str(exc))


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    text = exc.detail if isinstance(exc, HTTPException) else "error"
    return context_of(request).renderer.page(request, "error.html", status, error=text)


def build_app(settings: Settings) -> ASGIApp:
    """The whole dashboard for ``settings``' namespace, guarded by its token (if any)."""
    app = Starlette(
        routes=ROUTES,
        exception_handlers={MailfleetError: _unavailable, HTTPException: _http_error},
    )
    app.state.context = Context(settings, Renderer(settings.namespace))
    login_page = Starlette(routes=[Route("/{path:path}", login.form, methods=["GET", "POST"])])
    login_page.state.context = app.state.context
    return Guard(app, settings.dashboard_token, login_page)
