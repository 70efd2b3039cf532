"""``mailfleet report``: what became of the mail, from the counters in Redis
(``shared/reports.py``), with the hard-bounce and complaint rates.

A row whose complaint rate is over 0.1 % or whose hard-bounce rate is over 2 % is marked:
the levels at which mailbox providers start to doubt a sender (Gmail's and Yahoo's 2024
rules block at 0.3 %). Rates are over the mail sent in the same rows.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import redis

from mailfleet.shared.cli import EXIT_OK, Subparsers
from mailfleet.shared.complaint_guard import ComplaintGuard
from mailfleet.shared.durations import parse_duration
from mailfleet.shared.redis_client import make_redis, redis_errors
from mailfleet.shared.reports import Metric, ReportKeys, day_of, parse_field
from mailfleet.shared.settings import Settings

COMPLAINT_WARNING = 0.001
HARD_BOUNCE_WARNING = 0.02
By = Literal["day", "sender", "domain", "lane"]
COUNTED = [metric for metric in Metric if metric is not Metric.IGNORED]


@dataclass
class Row:
    key: str
    counts: dict[Metric, int] = field(default_factory=lambda: dict.fromkeys(COUNTED, 0))

    def rate(self, metric: Metric) -> float | None:
        sent = self.counts[Metric.SENT]
        return self.counts[metric] / sent if sent else None

    @property
    def flags(self) -> list[str]:
        flags = []
        if (self.rate(Metric.COMPLAINED) or 0) > COMPLAINT_WARNING:
            flags.append("complaint rate over 0.1 %")
        if (self.rate(Metric.HARD_BOUNCED) or 0) > HARD_BOUNCE_WARNING:
            flags.append("hard-bounce rate over 2 %")
        return flags

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            **{metric.value: n for metric, n in self.counts.items()},
            "hard_bounce_rate": self.rate(Metric.HARD_BOUNCED),
            "complaint_rate": self.rate(Metric.COMPLAINED),
            "flags": self.flags,
        }


@dataclass
class Report:
    since: str
    by: By
    rows: list[Row]
    ignored: dict[str, int]
    paused: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {
            "since": self.since,
            "by": self.by,
            "rows": [row.as_dict() for row in self.rows],
            "ignored": self.ignored,
            "paused": self.paused,
        }


def days_back(now: datetime, seconds: float, keep_days: int) -> list[str]:
    """The UTC days from ``seconds`` ago to today, no more than the counters keep."""
    count = min(keep_days, max(1, int(-(-seconds // 86400)) + 1))
    return [day_of(now - timedelta(days=back)) for back in range(count - 1, -1, -1)]


def read_report(
    client: redis.Redis, keys: ReportKeys, days: list[str], by: By, guard: ComplaintGuard
) -> Report:
    rows: dict[str, Row] = {}
    ignored: dict[str, int] = defaultdict(int)
    with redis_errors("cannot read the report counters"):
        pipeline = client.pipeline(transaction=False)
        for day in days:
            pipeline.hgetall(keys.day(day))
        per_day = pipeline.execute()
    for day, counters in zip(days, per_day, strict=True):
        for raw_field, raw_count in counters.items():
            count = parse_field(raw_field.decode() if isinstance(raw_field, bytes) else raw_field)
            if count is None:
                continue
            n = int(raw_count)
            if count.metric is Metric.IGNORED:
                ignored[count.sender] += n
                continue
            key = {"day": day, "sender": count.sender, "domain": count.domain, "lane": count.lane}[
                by
            ]
            rows.setdefault(key, Row(key)).counts[count.metric] += n
    paused = [pause.domain for pause in guard.pauses()]
    return Report(
        days[0], by, sorted(rows.values(), key=lambda row: row.key), dict(ignored), paused
    )


def render(report: Report) -> str:
    header = [report.by, *(metric.value for metric in COUNTED), "hard %", "complaint %"]
    lines = [[row.key, *(str(row.counts[m]) for m in COUNTED), *_rates(row)] for row in report.rows]
    widths = [max(len(cells[i]) for cells in [header, *lines]) for i in range(len(header))]
    out = [f"since {report.since} (UTC), by {report.by}"]
    out.append("  ".join(cell.ljust(width) for cell, width in zip(header, widths, strict=True)))
    for row, cells in zip(report.rows, lines, strict=True):
        text = "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True))
        out.append(text + ("  ! " + "; ".join(row.flags) if row.flags else ""))
    if not report.rows:
        out.append("(nothing counted yet)")
    if report.ignored:
        causes = ", ".join(f"{cause} {n}" for cause, n in sorted(report.ignored.items()))
        out.append(f"reports ignored: {causes}")
    if report.paused:
        out.append(f"bulk mail paused for: {', '.join(report.paused)} (mailfleet resume DOMAIN)")
    return "\n".join(out)


def _rates(row: Row) -> list[str]:
    return [
        "-" if (rate := row.rate(metric)) is None else f"{rate * 100:.2f}"
        for metric in (Metric.HARD_BOUNCED, Metric.COMPLAINED)
    ]


def _since(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def register(subparsers: Subparsers) -> None:
    report = subparsers.add_parser(
        "report", help="delivery report: sent, bounces, complaints and their rates"
    )
    report.add_argument(
        "--since", type=_since, default=7 * 86400.0, help="e.g. 24h, 7d (default 7d)"
    )
    report.add_argument("--by", choices=["day", "sender", "domain", "lane"], default="day")
    report.add_argument("--json", action="store_true", help="machine-readable output")
    report.set_defaults(handler=run_report)

    resume = subparsers.add_parser(
        "resume", help="lift the complaint guard's pause of a sender domain's bulk mail"
    )
    resume.add_argument("domain", help="the sender domain, e.g. news.example.com")
    resume.set_defaults(handler=run_resume)


def _guard(client: redis.Redis, settings: Settings, keys: ReportKeys) -> ComplaintGuard:
    return ComplaintGuard(client, keys, settings.complaint_pause, settings.complaint_min_sends)


def run_report(args: argparse.Namespace, settings: Settings) -> int:
    client = make_redis(settings)
    keys = ReportKeys(settings.names, settings.report_days)
    days = days_back(datetime.now(UTC), args.since, settings.report_days)
    report = read_report(client, keys, days, args.by, _guard(client, settings, keys))
    print(json.dumps(report.as_dict()) if args.json else render(report))
    return EXIT_OK


def run_resume(args: argparse.Namespace, settings: Settings) -> int:
    client = make_redis(settings)
    keys = ReportKeys(settings.names, settings.report_days)
    domain = args.domain.strip().lower()
    if _guard(client, settings, keys).resume(domain):
        print(f"resumed bulk mail from {domain}")
    else:
        print(f"bulk mail from {domain} was not paused")
    return EXIT_OK
