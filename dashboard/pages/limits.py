"""Limits: every configured bucket and its state now, the slow-downs per domain, and
``explain`` for a pasted job (``worker/limits/explain.py``, as ``mailfleet explain``)."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from mailfleet.dashboard.pages.common import context_of
from mailfleet.shared.errors import InvalidJobError
from mailfleet.shared.job import parse_job
from mailfleet.worker.limits.explain import Explanation, explain_job, fleet_limits


async def limits(request: Request, explained: Explanation | None = None) -> Response:
    context = context_of(request)
    fleet = await run_in_threadpool(fleet_limits, context.settings)
    return context.renderer.page(
        request, "limits.html", fleet=fleet, explained=explained, job_text=""
    )


async def explain(request: Request) -> Response:
    context = context_of(request)
    form = await request.form()
    text = str(form.get("job", ""))
    fleet = await run_in_threadpool(fleet_limits, context.settings)
    try:
        job = parse_job(text.encode(), context.settings.job_limits)
    except InvalidJobError as exc:
        return context.renderer.page(
            request,
            "limits.html",
            400,
            fleet=fleet,
            explained=None,
            job_text=text,
            error=f"not a valid job: {exc}",
        )
    explained = await run_in_threadpool(explain_job, context.settings, job)
    return context.renderer.page(
        request, "limits.html", fleet=fleet, explained=explained, job_text=text
    )
