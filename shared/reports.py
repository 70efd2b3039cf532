"""Delivery report counters in Redis: what became of the mail, per day, kept for
``MAILFLEET_REPORT_DAYS``.

One hash per UTC day, ``{ns}:report:<YYYY-MM-DD>``, with a field per
``<metric>|<sender domain>|<recipient domain>|<lane>`` holding a count. The worker writes
sent, deferred, dead-lettered and suppressed counts pipelined with its sent marks (no
round trip of their own); the bounce processor writes bounces and complaints, and the
causes of the reports it ignored under ``ignored|<cause>|-|-``.

The complaint guard needs a rolling 24 hours, which days cannot give: the sent and
complained counts per sender domain are also kept per UTC hour, ``{ns}:hourly:<YYYYMMDDHH>``,
field ``<metric>|<sender domain>``, for 25 hours.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from mailfleet.shared.names import Names

HOURLY_TTL = 25 * 3600
SEPARATOR = "|"


class Metric(StrEnum):
    SENT = "sent"  # accepted by the relay
    DEFERRED = "deferred"  # a transient failure, retried
    HARD_BOUNCED = "hard_bounced"  # refused for good: by the relay or in a later DSN
    SOFT_BOUNCED = "soft_bounced"  # a DSN saying delivery is delayed or failed for now
    COMPLAINED = "complained"  # an ARF abuse or fraud report
    DEAD_LETTERED = "dead_lettered"
    SUPPRESSED = "suppressed"  # not sent: on the suppression list
    IGNORED = "ignored"  # a report mailfleet did not act on; the field's sender is the cause


HOURLY_METRICS = frozenset({Metric.SENT, Metric.COMPLAINED})
Command = tuple[str | int, ...]


def day_of(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d")


def hour_of(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%d%H")


@dataclass(frozen=True)
class Count:
    """One counter: ``n`` of ``metric`` for mail from ``sender`` to ``domain`` on ``lane``."""

    metric: Metric
    sender: str
    domain: str
    lane: str
    n: int = 1

    @property
    def field(self) -> str:
        return SEPARATOR.join((self.metric.value, self.sender, self.domain, self.lane))


@dataclass(frozen=True)
class ReportKeys:
    names: Names
    days: int = 35

    def day(self, day: str) -> str:
        return self.names.redis_key("report", day)

    def hour(self, hour: str) -> str:
        return self.names.redis_key("hourly", hour)

    def last_hours(self, now: datetime, hours: int = 24) -> list[str]:
        """The hourly keys of the ``hours`` hours up to and including ``now``'s."""
        return [self.hour(hour_of(now - timedelta(hours=back))) for back in range(hours)]

    def increments(self, counts: Iterable[Count], now: datetime) -> list[Command]:
        """The commands that add ``counts``, without their EXPIREs (see :meth:`expiries`)."""
        day_key = self.day(day_of(now))
        hour_key = self.hour(hour_of(now))
        commands: list[Command] = []
        for count in counts:
            commands.append(("HINCRBY", day_key, count.field, count.n))
            if count.metric in HOURLY_METRICS:
                field = f"{count.metric.value}{SEPARATOR}{count.sender}"
                commands.append(("HINCRBY", hour_key, field, count.n))
        return commands

    def expiries(self, now: datetime) -> list[Command]:
        """What keeps the day's and the hour's keys for as long as they are wanted."""
        return [
            ("EXPIRE", self.day(day_of(now)), self.days * 86400),
            ("EXPIRE", self.hour(hour_of(now)), HOURLY_TTL),
        ]


def parse_field(field: str) -> Count | None:
    """The counter a report hash field names (without its count); None if malformed."""
    parts = field.split(SEPARATOR)
    if len(parts) != 4:
        return None
    try:
        metric = Metric(parts[0])
    except ValueError:
        return None
    return Count(metric, parts[1], parts[2], parts[3])
