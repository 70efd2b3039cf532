"""The suppression list: addresses never to mail again, in Redis under ``{ns}:suppressed``.

A hash of lower-cased address → JSON ``{"reason": ..., "at": ...}``. The worker adds an
address when a relay says the mailbox is bad (e.g. 5.1.1) and skips suppressed recipients;
operators manage it with ``mailfleet suppression list|add|remove``.

Beside it, ``{ns}:suppressed:scoped`` holds suppressions for one scope only, one sender
domain's one list (``shared/scope.py``): a one-click unsubscribe writes there, so the same
person still gets the sender's transactional mail. Its fields are address, domain and list
joined by line breaks; the values are the same JSON.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass

import redis

from mailfleet.shared.names import Names
from mailfleet.shared.redis_client import redis_errors
from mailfleet.shared.scope import EVERYTHING, Scope, split_field


@dataclass(frozen=True)
class Suppressed:
    address: str
    reason: str
    at: float
    scope: str = EVERYTHING  # or "sender domain/list"


def entry_json(reason: str) -> str:
    """The list's value for an address suppressed now for ``reason``."""
    return json.dumps({"reason": reason[:500], "at": time.time()})


class SuppressionList:
    def __init__(self, client: redis.Redis, names: Names) -> None:
        self._client = client
        self.key = names.redis_key("suppressed")
        self.scoped_key = names.redis_key("suppressed", "scoped")

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
        found, more = self._scan(self.key, text, limit)
        return _parsed(found), more

    def search_scoped(self, text: str, limit: int) -> tuple[list[Suppressed], bool]:
        """:meth:`search` of the scoped suppressions."""
        found, more = self._scan(self.scoped_key, text, limit)
        return _parsed_scoped(found), more

    def _scan(self, key: str, text: str, limit: int) -> tuple[list[tuple[bytes, bytes]], bool]:
        pattern = "*" + "".join(f"\\{c}" if c in "*?[]\\" else c for c in text.lower()) + "*"
        found: list[tuple[bytes, bytes]] = []
        with redis_errors("cannot read the suppression list"):
            for item in self._client.hscan_iter(key, match=pattern, count=500):
                if len(found) >= limit:
                    return found, True
                found.append(item)
        return found, False

    def size(self) -> int:
        with redis_errors("cannot read the suppression list"):
            return int(self._client.hlen(self.key))

    def add_scoped(self, address: str, scope: Scope, reason: str) -> None:
        """Suppress ``address`` for ``scope`` only (one sender domain's one list)."""
        entry = entry_json(reason)
        with redis_errors("cannot write the suppression list"):
            self._client.hset(self.scoped_key, scope.field(address), entry)

    def remove_scoped(self, address: str, scope: Scope) -> bool:
        """Lift ``address``'s suppression for ``scope``; True if it was there."""
        with redis_errors("cannot write the suppression list"):
            return bool(self._client.hdel(self.scoped_key, scope.field(address)))

    def scoped_entries(self) -> list[Suppressed]:
        """Every scoped suppression, by address, then scope."""
        with redis_errors("cannot read the suppression list"):
            raw = self._client.hgetall(self.scoped_key)
        return _parsed_scoped(raw.items())


def _parsed(raw: Iterable[tuple[bytes | str, bytes | str]]) -> list[Suppressed]:
    result = []
    for address, entry in raw:
        data = json.loads(entry)
        name = address.decode() if isinstance(address, bytes) else str(address)
        result.append(Suppressed(name, str(data.get("reason", "")), float(data.get("at", 0))))
    return sorted(result, key=lambda item: item.address)


def _parsed_scoped(raw: Iterable[tuple[bytes | str, bytes | str]]) -> list[Suppressed]:
    result = []
    for field, entry in raw:
        text = field.decode() if isinstance(field, bytes) else str(field)
        address, scope = split_field(text)
        data = json.loads(entry)
        reason, at = str(data.get("reason", "")), float(data.get("at", 0))
        result.append(Suppressed(address, reason, at, str(scope)))
    return sorted(result, key=lambda item: (item.address, item.scope))
