"""Parsing of durations (``5s``, ``2m``, ``1h``, ``7d``) and rates (``200/s``)."""

from __future__ import annotations

import re
from dataclasses import dataclass

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(s|m|h|d)\s*$")


def parse_duration(text: str) -> float:
    """Seconds in ``text`` such as ``5s``, ``2m``, ``1h``, ``7d`` or ``250ms``."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a duration like 5s, 2m, 1h or 7d")
    seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds <= 0:
        raise ValueError(f"{text!r} must be longer than zero")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest exact spelling of ``seconds`` (``300`` → ``5m``); used in queue names."""
    for unit in ("d", "h", "m", "s"):
        count = seconds / _UNITS[unit]
        if count >= 1 and count == int(count):
            return f"{int(count)}{unit}"
    return f"{round(seconds * 1000)}ms"


@dataclass(frozen=True)
class Rate:
    """``count`` events per ``per_seconds``; ``200/s`` or ``5000/m``."""

    count: float
    per_seconds: float

    @classmethod
    def parse(cls, text: str) -> Rate:
        match = _RATE.match(text)
        if match is None:
            raise ValueError(f"{text!r} is not a rate like 200/s, 5000/m, 100000/h or 500000/d")
        count = float(match.group(1))
        if count <= 0:
            raise ValueError(f"{text!r} must allow more than zero")
        return cls(count=count, per_seconds=_UNITS[match.group(2)])

    @property
    def per_second(self) -> float:
        return self.count / self.per_seconds

    def __str__(self) -> str:
        unit = {1.0: "s", 60.0: "m", 3600.0: "h", 86400.0: "d"}[self.per_seconds]
        count = round(self.count, 3)
        count = int(count) if count == int(count) else count
        return f"{count}/{unit}"
