"""Choosing the delay tier for a retry: pure policy, no I/O."""

from __future__ import annotations


def retry_delay(attempt: int, delays: list[float]) -> float:
    """Delay before attempt ``attempt + 1``: the ``attempt``-th tier, the last tier once past it."""
    ordered = sorted(delays)
    return ordered[min(max(attempt, 1), len(ordered)) - 1]


def wait_tier(seconds: float, delays: list[float]) -> float:
    """The longest tier not longer than ``seconds`` (the shortest if all are longer)."""
    ordered = sorted(delays)
    fitting = [delay for delay in ordered if delay <= seconds]
    return fitting[-1] if fitting else ordered[0]
