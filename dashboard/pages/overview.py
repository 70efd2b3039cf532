"""The overview: queue depths and consumers, the send rate chart, workers and breakers."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from mailfleet.dashboard.chart import rate_chart
from mailfleet.dashboard.pages.common import context_of
from mailfleet.producer.ops.stats import QueueStat, StatsReader
from mailfleet.shared.errors import MailfleetError
from mailfleet.shared.redis_client import make_redis
from mailfleet.shared.send_history import RatePoint, read_history
from mailfleet.shared.settings import Settings
from mailfleet.shared.worker_beats import WorkerBeat, read_beats

_RECENT = 6  # slots (a minute) for the "now" figure


@dataclass(frozen=True)
class Overview:
    lanes: dict[str, QueueStat]
    delays: dict[str, QueueStat]
    dead: QueueStat
    history: list[RatePoint] = field(default_factory=list)
    workers: list[WorkerBeat] = field(default_factory=list)
    breakers: dict[str, Counter[str]] = field(default_factory=dict)  # relay → state → workers
    redis_error: str | None = None

    @property
    def rate_now(self) -> float:
        """Deliveries per second over the last full minute (the filling slot left out)."""
        recent = self.history[-_RECENT - 1 : -1]
        return sum(point.delivered for point in recent) / (10.0 * len(recent)) if recent else 0.0

    @property
    def ready_workers(self) -> int:
        return sum(beat.ready for beat in self.workers)


def read_overview(settings: Settings) -> Overview:
    """The depths over AMQP (as ``mailfleet stats``), then history and beats from Redis."""
    reader = StatsReader(settings)
    try:
        lanes, delays, dead = reader.grouped()
    finally:
        reader.close()
    client = make_redis(settings)
    try:
        history = read_history(client, settings.names, time.time())
        workers = read_beats(client, settings.names)
    except MailfleetError as exc:
        return Overview(lanes, delays, dead, redis_error=str(exc))
    finally:
        client.close()
    breakers: dict[str, Counter[str]] = {relay.name: Counter() for relay in settings.smtp_relays}
    for beat in workers:
        for relay, state in beat.breakers.items():
            breakers.setdefault(relay, Counter())[state] += 1
    return Overview(lanes, delays, dead, history, workers, breakers)


async def overview(request: Request) -> Response:
    context = context_of(request)
    data = await run_in_threadpool(read_overview, context.settings)
    template = "overview_live.html" if context.renderer.is_refresh(request) else "overview.html"
    return context.renderer.page(request, template, o=data, chart=rate_chart(data.history))
