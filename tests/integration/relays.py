"""Scripted replies for the aiosmtpd test relay: answer some recipients with chosen codes."""

from __future__ import annotations

import threading
from collections import Counter, defaultdict
from collections.abc import Callable


class ScriptedReplies:
    """Per-recipient scripts: the n-th RCPT for an address gets the n-th reply in its list,
    ``None`` meaning accept; past the end of a script the last entry repeats."""

    def __init__(self) -> None:
        self._scripts: dict[str, list[str | None]] = {}
        self._calls: Counter[str] = Counter()
        self._hooks: dict[str, Callable[[], None]] = {}
        self._lock = threading.Lock()
        self.seen: defaultdict[str, int] = defaultdict(int)

    def script(self, address: str, *replies: str | None) -> None:
        self._scripts[address.lower()] = list(replies)

    def on_rcpt(self, address: str, hook: Callable[[], None]) -> None:
        """Run ``hook`` (e.g. kill the worker) when ``address`` is offered."""
        self._hooks[address.lower()] = hook

    def rcpt(self, address: str) -> str | None:
        key = address.lower()
        with self._lock:
            call = self._calls[key]
            self._calls[key] += 1
            self.seen[key] += 1
        if key in self._hooks:
            self._hooks[key]()
        replies = self._scripts.get(key)
        if not replies:
            return None
        return replies[min(call, len(replies) - 1)]
