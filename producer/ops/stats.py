"""``mailfleet stats``: queue depths, consumers and the send rate of a namespace.

Depths and consumer counts come from a passive ``queue_declare`` of every queue (messages
ready, not those a worker holds unacked; no management plugin needed). The send rate comes
from the Redis counter ``{ns}:stats:delivered``, which workers ``INCRBY`` by the recipients a
relay accepted: read twice, ``interval`` apart. An absent key counts as 0 (no rate yet); an
unreachable Redis leaves the rate unknown but still shows the depths.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kombu.connection import Connection

from mailfleet.producer.connection import open_connection
from mailfleet.producer.topology import queue_depths, topology_of
from mailfleet.shared.cli import EXIT_OK, Subparsers, positive_float, positive_int
from mailfleet.shared.clock import utc_stamp
from mailfleet.shared.job import Lane
from mailfleet.shared.redis_client import REDIS_DOWN, make_redis
from mailfleet.shared.settings import Settings, redact_url
from mailfleet.shared.topology import tier_name


@dataclass(frozen=True)
class QueueStat:
    queue: str
    messages: int
    consumers: int

    def as_dict(self) -> dict[str, Any]:
        return {"queue": self.queue, "messages": self.messages, "consumers": self.consumers}


@dataclass(frozen=True)
class Sample:
    """The delivered counter at one moment (``None`` when Redis could not be read)."""

    delivered: int | None
    monotonic: float


@dataclass(frozen=True)
class Stats:
    namespace: str
    at: datetime
    lanes: dict[str, QueueStat]
    delays: dict[str, QueueStat]
    dead: QueueStat
    delivered_total: int | None
    interval_s: float
    rate_per_s: float | None
    paused: tuple[str, ...] = ()  # sender domains whose bulk mail the complaint guard holds

    def as_dict(self) -> dict[str, Any]:
        return {
            "namespace": self.namespace,
            "time": utc_stamp(self.at, timespec="auto"),
            "lanes": {lane: stat.as_dict() for lane, stat in self.lanes.items()},
            "delay": {tier: stat.as_dict() for tier, stat in self.delays.items()},
            "dead": self.dead.as_dict(),
            "delivered_total": self.delivered_total,
            "interval_s": round(self.interval_s, 3),
            "send_rate_per_s": None if self.rate_per_s is None else round(self.rate_per_s, 3),
            "bulk_paused": list(self.paused),
        }


def send_rate(before: Sample, after: Sample) -> float | None:
    """Deliveries per second between two samples; 0 when the counter did not grow."""
    if before.delivered is None or after.delivered is None:
        return None
    elapsed = after.monotonic - before.monotonic
    if elapsed <= 0 or after.delivered <= before.delivered:
        return 0.0  # no deliveries, or the counter was reset
    return (after.delivered - before.delivered) / elapsed


class StatsReader:
    """Reads depths over one AMQP connection and the counter over one Redis client."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._topology = topology_of(settings)
        self._key = settings.names.delivered_counter
        self._redis = make_redis(settings)
        self._connection: Connection = open_connection(settings)
        self.redis_error: str | None = None

    def close(self) -> None:
        self._connection.release()
        self._redis.close()

    def sample(self) -> Sample:
        try:
            value = self._redis.get(self._key)
        except REDIS_DOWN as exc:  # down, or e.g. WRONGTYPE: the rate is unknown either way
            url = redact_url(self._settings.redis_url.get_secret_value())
            self.redis_error = f"cannot read {self._key} from Redis at {url}: {exc}"
            return Sample(None, time.monotonic())
        try:
            delivered = 0 if value is None else int(value)
        except ValueError:
            self.redis_error = f"{self._key} does not hold a counter"
            return Sample(None, time.monotonic())
        self.redis_error = None
        return Sample(delivered, time.monotonic())

    def depths(self) -> dict[str, QueueStat]:
        found = queue_depths(self._connection, self._topology)
        return {
            name: QueueStat(name, messages, consumers)
            for name, (messages, consumers) in found.items()
        }

    def grouped(self) -> tuple[dict[str, QueueStat], dict[str, QueueStat], QueueStat]:
        """The depths now as (lanes by lane, delay tiers by tier, the dead-letter queue)."""
        depths = self.depths()
        names = self._settings.names
        lanes = {lane.value: depths[names.lane_queue(lane)] for lane in Lane}
        delays = {
            tier_name(delay): depths[names.delay_queue(delay)]
            for delay in sorted(set(self._settings.retry_delays))
        }
        return lanes, delays, depths[names.dead_queue]

    def stats(self, before: Sample) -> tuple[Stats, Sample]:
        """Depths now, and the rate since ``before``; also the sample to measure the next from."""
        lanes, delays, dead = self.grouped()
        after = self.sample()
        stats = Stats(
            namespace=self._settings.namespace,
            at=datetime.now(UTC),
            lanes=lanes,
            delays=delays,
            dead=dead,
            delivered_total=after.delivered,
            interval_s=after.monotonic - before.monotonic,
            rate_per_s=send_rate(before, after),
            paused=self.paused(),
        )
        return stats, after

    def paused(self) -> tuple[str, ...]:
        """The complaint guard's paused sender domains (none when Redis is away)."""
        try:
            domains = self._redis.hkeys(self._settings.names.redis_key("paused"))
        except REDIS_DOWN:
            return ()
        return tuple(sorted(d.decode() if isinstance(d, bytes) else str(d) for d in domains))


def render(stats: Stats, redis_error: str | None = None) -> str:
    """A table for humans."""
    rows = [(f"lane {lane}", stat) for lane, stat in stats.lanes.items()]
    rows += [(f"delay {tier}", stat) for tier, stat in stats.delays.items()]
    rows.append(("dead letters", stats.dead))
    label_width = max(len(label) for label, _ in rows) + 2
    width = max(len(stat.queue) for _, stat in rows)
    lines = [
        f"mailfleet stats: namespace {stats.namespace!r} at {stats.at:%Y-%m-%d %H:%M:%S}Z",
        "",
        f"{'':{label_width}}{'queue':<{width}}  {'ready':>9}  {'consumers':>9}",
    ]
    lines += [
        f"{label:<{label_width}}{stat.queue:<{width}}  {stat.messages:>9}  {stat.consumers:>9}"
        for label, stat in rows
    ]
    lines.append("")
    if stats.rate_per_s is None:
        lines.append(f"send rate: unknown ({redis_error or 'Redis unreachable'})")
    else:
        lines.append(
            f"send rate: {stats.rate_per_s:.1f}/s over {stats.interval_s:.1f}s "
            f"(delivered in all: {stats.delivered_total})"
        )
    if stats.paused:
        lines.append(f"bulk paused by the complaint guard: {', '.join(stats.paused)}")
    return "\n".join(lines)


def register(subparsers: Subparsers) -> None:
    stats = subparsers.add_parser(
        "stats", help="show queue depths, consumers and the send rate of the namespace"
    )
    stats.add_argument("--json", action="store_true", help="print one JSON object (per refresh)")
    stats.add_argument(
        "--interval",
        type=positive_float,
        default=1.0,
        metavar="SECONDS",
        help="time over which the send rate is measured (default 1)",
    )
    stats.add_argument(
        "--watch",
        type=positive_float,
        nargs="?",
        const=2.0,
        metavar="SECONDS",
        help="refresh every SECONDS (default 2) until Ctrl-C",
    )
    stats.add_argument(
        "--count", type=positive_int, metavar="N", help="with --watch: stop after N refreshes"
    )
    stats.set_defaults(handler=run_stats)


def run_stats(args: argparse.Namespace, settings: Settings) -> int:
    interval = args.watch or args.interval
    refreshes = (args.count or sys.maxsize) if args.watch else 1
    reader = StatsReader(settings)
    try:
        before = reader.sample()
        for refresh in range(refreshes):
            time.sleep(max(0.0, before.monotonic + interval - time.monotonic()))
            stats, before = reader.stats(before)
            _show(
                stats, reader.redis_error, as_json=args.json, clear=bool(args.watch) and refresh > 0
            )
    except KeyboardInterrupt:
        pass
    finally:
        reader.close()
    return EXIT_OK


def _show(stats: Stats, redis_error: str | None, *, as_json: bool, clear: bool) -> None:
    if as_json:
        print(json.dumps(stats.as_dict()), flush=True)
        if redis_error:
            print(f"mailfleet stats: {redis_error}", file=sys.stderr)
        return
    if clear and sys.stdout.isatty():
        print("\x1b[H\x1b[2J", end="")  # redraw in place
    elif clear:
        print()
    print(render(stats, redis_error), flush=True)
