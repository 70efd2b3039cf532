"""SMTP relay addresses.

``smtp://[user:pass@]host:port[?starttls=true|false&weight=N&rate=100/s,50000/d]`` or
``smtps://…``
(implicit TLS). STARTTLS is required by default for every relay that is not on loopback;
``starttls=false`` turns it off explicitly (a local sink, a trusted network).

``source=IP`` binds the connection to that local address. Several relay URLs with the same
host and different sources form a source-IP pool: each is a relay of its own, with its own
weight, breaker and rate.

``warmup=50/d,100/d,500/d&since=2026-12-01`` caps a new source's day by a schedule, one
step per UTC day from ``since``, and lifts the cap once the schedule is over.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field, fields
from functools import cached_property
from urllib.parse import parse_qs, unquote, urlsplit

from pydantic import SecretStr

from mailfleet.shared.durations import Rate
from mailfleet.shared.limit_spec import Budget, Limit, Warmup

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_DEFAULT_PORTS = {"smtp": 25, "smtps": 465}
_OPTIONS = {"starttls", "weight", "rate", "source", "warmup", "since"}


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_CACHED = frozenset({"_hash", "name"})


@dataclass(frozen=True)
class Relay:
    """One SMTP relay; the password is a ``SecretStr`` and never shows in ``repr`` or logs."""

    host: str
    port: int
    implicit_tls: bool = False
    starttls: bool | None = None  # None: required unless the relay is on loopback
    username: str | None = None
    password: SecretStr | None = field(default=None, repr=False)
    weight: int = 1
    rate: Rate | None = None  # the pace of ?rate=
    source: str | None = None  # the local address the connection binds to
    budgets: tuple[Budget, ...] = ()  # the hourly and daily budgets of ?rate=
    warmup: Warmup | None = None  # ?warmup=50/d,100/d,...&since=2026-12-01

    def __hash__(self) -> int:
        # A relay keys the breakers, connections and limits of every send: the generated
        # hash of all eleven fields, computed on each lookup, was 2 % of a worker's CPU.
        cached: int | None = self.__dict__.get("_hash")
        if cached is None:
            cached = hash(tuple(getattr(self, each.name) for each in fields(self)))
            object.__setattr__(self, "_hash", cached)
        return cached

    def __getstate__(self) -> dict[str, object]:
        # The cached hash is of this process's string hashing: another process (a group's
        # child, say) must compute its own.
        return {key: value for key, value in self.__dict__.items() if key not in _CACHED}

    @cached_property
    def name(self) -> str:
        """``host:port`` (``host:port@source`` with a source address): how logs, metrics and
        rate-limit keys name the relay (no credentials)."""
        where = f"{self.host}:{self.port}"
        return where if self.source is None else f"{where}@{self.source}"

    @property
    def uses_starttls(self) -> bool:
        if self.implicit_tls:
            return False
        return self.starttls if self.starttls is not None else not is_loopback(self.host)

    @classmethod
    def parse(cls, url: str) -> Relay:
        parts = urlsplit(url.strip())
        if parts.scheme not in _DEFAULT_PORTS:
            raise ValueError("relay URL must start with smtp:// or smtps://")
        if not parts.hostname:
            raise ValueError("relay URL has no host")
        try:
            port = _DEFAULT_PORTS[parts.scheme] if parts.port is None else parts.port
        except ValueError as exc:
            raise ValueError("relay URL has an invalid port") from exc
        if not 0 < port < 65536:
            raise ValueError("relay URL has an invalid port")
        query = parse_qs(parts.query, keep_blank_values=True)
        options = {key: values[-1].lower() for key, values in query.items()}
        unknown = set(options) - _OPTIONS
        if unknown:
            raise ValueError(f"unknown relay option(s): {', '.join(sorted(unknown))}")
        limit = Limit.parse(options["rate"]) if "rate" in options else Limit()
        warmup = (
            Warmup.parse(options["warmup"], options.get("since")) if "warmup" in options else None
        )
        if "since" in options and warmup is None:
            raise ValueError("since is the first day of a warmup; give warmup= too")
        return cls(
            host=parts.hostname,
            port=port,
            implicit_tls=parts.scheme == "smtps",
            starttls=_starttls(options.get("starttls"), parts.scheme),
            username=unquote(parts.username) if parts.username else None,
            password=SecretStr(unquote(parts.password)) if parts.password else None,
            weight=_weight(options.get("weight", "1")),
            rate=limit.pace,
            source=_source(options["source"]) if "source" in options else None,
            budgets=limit.budgets,
            warmup=warmup,
        )


def _starttls(value: str | None, scheme: str) -> bool | None:
    if value is None:
        return None
    if value not in _TRUE | _FALSE:
        raise ValueError("starttls must be true or false")
    if scheme == "smtps" and value in _TRUE:
        raise ValueError("smtps:// is already TLS; starttls=true contradicts it")
    return value in _TRUE


def _weight(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise ValueError("weight must be a whole number of at least 1")
    return int(value)


def _source(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ValueError(f"source must be an IP address of this host, got {value!r}") from None
