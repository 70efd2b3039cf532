"""The suppression list: addresses never to mail again, in Redis under ``{ns}:suppressed``.

A hash of lower-cased address → JSON ``{"reason": ..., "at": ...}``. The worker adds an
address when a relay says the mailbox is bad (e.g. 5.1.1) and skips suppressed recipients;
operators manage it with ``mailfleet suppression list|add|remove``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass

import redis

from mailfleet.shared.names import Names
from mailfleet.shared.redis_client import redis_errors


@dataclass(frozen=True)
class Suppressed:
    address: str
    reason: str
    at: float


def entry_json(reason: str) -> str:
    """The list's value for an address suppressed now for ``reason``."""
    return json.dumps({"reason": reason[:500], "at": time.time()})


class SuppressionList:
    def __init__(self, client: redis.Redis, names: Names) -> None:
        self._client = client
        self.key = names.redis_key("suppressed")

    def add(self, address: str, reason: str) -> None:
        entry = entry_json(reason)
        with redis_errors("cannot write the suppression list"):
            self._client.hset(self.key, address.lower(), entry)

    def remove(self, address: str) -> bool:
        """Remove ``address``; True if it was on the list."""
        with redis_errors("cannot write the suppression list"):
            return bool(self._client.hdel(self.key, address.lower()))

    def entries(self) -> list[Suppressed]:
        with redis_errors("cannot read the suppression list"):
            raw = self._client.hgetall(self.key)
        return _parsed(raw.items())

    def search(self, text: str, limit: int) -> tuple[list[Suppressed], bool]:
        """Up to ``limit`` addresses containing ``text`` (all when it is empty), and whether
        there were more; read with HSCAN, so a long list is never loaded whole."""
        pattern = "*" + "".join(f"\\{c}" if c in "*?[]\\" else c for c in text.lower()) + "*"
        found: list[tuple[bytes, bytes]] = []
        with redis_errors("cannot read the suppression list"):
            for item in self._client.hscan_iter(self.key, match=pattern, count=500):
                if len(found) >= limit:
                    return _parsed(found), True
                found.append(item)
        return _parsed(found), False

    def size(self) -> int:
        with redis_errors("cannot read the suppression list"):
            return int(self._client.hlen(self.key))


def _parsed(raw: Iterable[tuple[bytes | str, bytes | str]]) -> list[Suppressed]:
    result = []
    for address, entry in raw:
        data = json.loads(entry)
        name = address.decode() if isinstance(address, bytes) else str(address)
        result.append(Suppressed(name, str(data.get("reason", "")), float(data.get("at", 0))))
    return sorted(result, key=lambda item: item.address)
