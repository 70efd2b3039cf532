"""The two ``MAILFLEET_REDIS_URL`` forms redis-py's ``from_url`` does not read.

- ``redis+sentinel://[:password@]host1:26379,host2:26379/service_name/db``: the primary
  that the sentinels name for ``service_name``, followed through failovers. The password
  is the data nodes' (the sentinels are asked without one).
- ``redis+cluster://[:password@]host1:6379,host2:6379``: a Redis Cluster, found from any
  of the nodes listed.

Every other form (``redis://``, ``rediss://``, ``unix://``) goes to ``from_url`` as it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from pydantic import SecretStr

SENTINEL_SCHEME = "redis+sentinel"
CLUSTER_SCHEME = "redis+cluster"


@dataclass(frozen=True)
class HostsUrl:
    """A parsed Sentinel or Cluster URL; ``service`` and ``db`` are Sentinel's only."""

    scheme: str
    hosts: tuple[tuple[str, int], ...]
    password: SecretStr | None = field(default=None, repr=False)
    username: str | None = None
    service: str = ""
    db: int = 0


def _hosts(netloc: str, default_port: int) -> tuple[tuple[str, int], ...]:
    hosts = []
    for item in netloc.split(","):
        host, colon, port = item.strip().rpartition(":")
        if not colon:
            host, port = port, str(default_port)
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{item.strip()!r} is not host:port")
        hosts.append((host.strip("[]"), int(port)))
    return tuple(hosts)


def parse_hosts_url(url: str) -> HostsUrl:
    """Read a ``redis+sentinel://`` or ``redis+cluster://`` URL; ValueError says what is
    wrong (and never quotes the password)."""
    scheme, separator, rest = url.partition("://")
    if not separator or scheme not in (SENTINEL_SCHEME, CLUSTER_SCHEME):
        raise ValueError(f"must start with {SENTINEL_SCHEME}:// or {CLUSTER_SCHEME}://")
    userinfo, at, location = rest.rpartition("@")
    username = password = None
    if at:
        user, _, secret = userinfo.partition(":")
        username, password = unquote(user) or None, SecretStr(unquote(secret)) if secret else None
    parts = urlsplit(f"{scheme}://{location}")
    if not parts.netloc:
        raise ValueError("names no host")
    sentinel = scheme == SENTINEL_SCHEME
    hosts = _hosts(parts.netloc, 26379 if sentinel else 6379)
    path = [segment for segment in parts.path.split("/") if segment]
    if not sentinel:
        if path:
            raise ValueError("a cluster URL has no path (Redis Cluster has only db 0)")
        return HostsUrl(scheme, hosts, password, username)
    if not path or len(path) > 2:
        raise ValueError("needs /service_name or /service_name/db after the sentinels")
    if len(path) == 2 and not path[1].isdigit():
        raise ValueError(f"db {path[1]!r} is not a number")
    db = int(path[1]) if len(path) == 2 else 0
    return HostsUrl(scheme, hosts, password, username, unquote(path[0]), db)
