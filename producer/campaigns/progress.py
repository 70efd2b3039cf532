"""A progress bar on a terminal (stderr), nothing when stderr is a file or a pipe."""

from __future__ import annotations

import sys
import time
from typing import TextIO

_WIDTH = 30
_EVERY = 0.1  # seconds between redraws


class ProgressBar:
    def __init__(self, total: int, label: str, stream: TextIO | None = None) -> None:
        self._total = max(total, 1)
        self._label = label
        self._stream = stream or sys.stderr
        self._shown = self._stream.isatty()
        self._drawn_at = 0.0

    def __call__(self, done: int) -> None:
        now = time.monotonic()
        if not self._shown or (now - self._drawn_at < _EVERY and done < self._total):
            return
        self._drawn_at = now
        filled = _WIDTH * min(done, self._total) // self._total
        bar = "#" * filled + "-" * (_WIDTH - filled)
        percent = 100 * done // self._total
        self._stream.write(f"\r{self._label} [{bar}] {done}/{self._total} {percent}%")
        self._stream.flush()

    def close(self) -> None:
        if self._shown:
            self._stream.write("\n")
            self._stream.flush()
