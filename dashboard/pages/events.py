"""Events and reports: the events tail (``mailfleet events tail``'s code) live as
server-sent events, or collected for a few seconds without JavaScript.

Delivery reports are ``mailfleet report``'s (``producer/ops/report.py``): its counters
by recipient domain over the last 7 days, with the hard-bounce and complaint rates and the
sender domains the complaint guard paused.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from importlib.util import find_spec

import anyio
from markupsafe import escape
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse

from mailfleet.dashboard.pages.common import context_of
from mailfleet.producer.connection import open_connection
from mailfleet.producer.ops.events_tail import EventTail, binding_keys, describe
from mailfleet.producer.ops.report import COUNTED, Report, days_back, read_report
from mailfleet.shared.complaint_guard import ComplaintGuard
from mailfleet.shared.errors import MailfleetError
from mailfleet.shared.events import Event
from mailfleet.shared.redis_client import make_redis
from mailfleet.shared.reports import Metric, ReportKeys
from mailfleet.shared.settings import Settings

STREAM_SECONDS = 600.0  # one stream's life; the browser's EventSource reconnects after
MAX_COLLECT_SECONDS = 10.0


REPORT_SECONDS = 7 * 86400.0


def reports_available() -> bool:
    return find_spec("mailfleet.producer.ops.report") is not None


def domain_report(settings: Settings) -> Report:
    """``mailfleet report --by domain --since 7d``, read the same way."""
    client = make_redis(settings)
    try:
        keys = ReportKeys(settings.names, settings.report_days)
        guard = ComplaintGuard(client, keys, settings.complaint_pause, settings.complaint_min_sends)
        days = days_back(datetime.now(UTC), REPORT_SECONDS, settings.report_days)
        return read_report(client, keys, days, "domain", guard)
    finally:
        client.close()


def event_line(body: bytes) -> str:
    """One event as a person reads it (``describe``), or its raw text if it is no event."""
    try:
        return describe(Event.from_wire(body))
    except (ValueError, MailfleetError):
        return body.decode("utf-8", "replace")


def _collect(settings: Settings, seconds: float) -> list[str]:
    connection = open_connection(settings)
    try:
        tail = EventTail(connection, settings.names.events_exchange, binding_keys(None))
        lines: list[str] = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            lines += [event_line(body) for body in tail.poll(min(0.5, seconds))]
        return lines
    finally:
        connection.release()


async def page(request: Request) -> Response:
    context = context_of(request)
    settings = context.settings
    collected: list[str] | None = None
    text = request.query_params.get("collect", "")
    if settings.events and text:
        try:
            seconds = min(max(float(text), 0.5), MAX_COLLECT_SECONDS)
        except ValueError:
            seconds = 5.0
        collected = await run_in_threadpool(_collect, settings, seconds)
    report = await run_in_threadpool(domain_report, settings) if reports_available() else None
    return context.renderer.page(
        request,
        "events.html",
        events_on=settings.events,
        exchange=settings.names.events_exchange,
        collected=collected,
        reports=report is not None,
        report=report,
        counted=COUNTED,
        rated=[Metric.HARD_BOUNCED, Metric.COMPLAINED],
    )


async def stream(request: Request) -> Response:
    """``text/event-stream`` of the events as HTML list items, escaped."""
    settings = context_of(request).settings
    if not settings.events:
        return PlainTextResponse("the event stream is off (MAILFLEET_EVENTS)", status_code=404)

    async def events() -> AsyncIterator[str]:
        connection = await run_in_threadpool(open_connection, settings)
        try:
            tail = await run_in_threadpool(
                EventTail, connection, settings.names.events_exchange, binding_keys(None)
            )
            yield ": following\n\n"
            deadline = time.monotonic() + STREAM_SECONDS
            while time.monotonic() < deadline:
                for body in await run_in_threadpool(tail.poll, 0.5):
                    line = escape(event_line(body).replace("\n", " "))
                    yield f'event: mailfleet\ndata: <li class="event">{line}</li>\n\n'
        finally:
            with anyio.CancelScope(shield=True):
                await run_in_threadpool(connection.release)

    return StreamingResponse(events(), media_type="text/event-stream")
