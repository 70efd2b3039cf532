"""The templates: Jinja2 with autoescaping on everything, so job bodies and headers from
other systems are shown as text, never run."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from importlib.resources import files
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.templating import Jinja2Templates

from mailfleet.shared.clock import utc_stamp

_HERE = files("mailfleet.dashboard")
TEMPLATES_DIR = str(_HERE.joinpath("templates"))
STATIC_DIR = str(_HERE.joinpath("static"))


def _stamp(value: datetime | float | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, int | float):
        value = datetime.fromtimestamp(value, UTC)
    return utc_stamp(value)


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)


def make_templates() -> Jinja2Templates:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["stamp"] = _stamp
    environment.filters["pretty"] = _pretty
    return Jinja2Templates(env=environment)


class Renderer:
    """Renders a page, or only its ``fragment`` block's template for an htmx refresh."""

    def __init__(self, namespace: str) -> None:
        self._templates = make_templates()
        self._namespace = namespace

    def page(
        self, request: Request, template: str, status: int = 200, **context: Any
    ) -> HTMLResponse:
        context.setdefault("error", None)
        response: HTMLResponse = self._templates.TemplateResponse(
            request,
            template,
            {
                "namespace": self._namespace,
                "csrf": request.state.csrf,
                "auth": request.state.auth,
                "path": request.url.path,
                **context,
            },
            status_code=status,
        )
        return response

    def is_refresh(self, request: Request) -> bool:
        """An htmx request for a fragment (its live refresh), not a whole page."""
        return request.headers.get("hx-request") == "true"
