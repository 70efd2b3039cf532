"""The suppression list: addresses never to mail again, in Redis under ``{ns}:suppressed``.

A hash of lower-cased address → JSON ``{"reason": ..., "at": ...}``. The worker adds an
address when a relay says the mailbox is bad (e.g. 5.1.1) and skips suppressed recipients;
operators manage it with ``mailfleet suppression list|add|remove``.
"""

from __future__ import annotations

import json
import time
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
        result = []
        for address, entry in raw.items():
            data = json.loads(entry)
            name = address.decode() if isinstance(address, bytes) else str(address)
            result.append(Suppressed(name, str(data.get("reason", "")), float(data.get("at", 0))))
        return sorted(result, key=lambda item: item.address)
