"""One POST of an event to an endpoint, and what its outcome means.

:func:`classify_status`, :func:`classify_error` and :func:`next_step` are pure: the whole
retry policy of webhooks is here.

- 2xx: delivered.
- 408, 429, 5xx, a timeout, a refused or broken connection: retried through the next delay
  tier (``MAILFLEET_WEBHOOK_RETRY_DELAYS``, the last one repeating) while the next attempt
  still falls within ``MAILFLEET_WEBHOOK_MAX_AGE`` of the first; then dead, ``exhausted``.
- Any other status (other 4xx; 3xx, as redirects are not followed): dead, ``permanent``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum

import httpx

MAX_RESPONSE = 1024  # bytes of a response body kept for the dead letter
_READ_AT_MOST = 64 * 1024  # bytes read from a response at all (the rest is dropped)


class Outcome(StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"  # a transient failure: try again later
    FINAL = "final"  # the endpoint refused it: trying again would not help


@dataclass(frozen=True)
class Attempt:
    """What one POST came to: ``status`` 0 when no response came back."""

    outcome: Outcome
    status: int
    error: str  # one line: "HTTP 503", "timed out", "cannot connect: ..."
    response: str = ""  # the start of the response body
    seconds: float = 0.0


@dataclass(frozen=True)
class Step:
    """What to do with the message after an attempt: ack it, retry it after ``delay``, or
    dead-letter it with ``reason`` (``permanent``, ``exhausted`` or ``invalid``)."""

    action: str  # "ack", "retry" or "dead"
    delay: float = 0.0
    reason: str = ""


ACK, RETRY, DEAD = "ack", "retry", "dead"


def classify_status(status: int) -> Outcome:
    if 200 <= status < 300:
        return Outcome.DELIVERED
    if status in {408, 429} or status >= 500:
        return Outcome.RETRY
    return Outcome.FINAL


def classify_error(error: httpx.HTTPError) -> Outcome:
    """A request that got no response: worth retrying, unless the request itself is at fault."""
    if isinstance(error, httpx.UnsupportedProtocol | httpx.LocalProtocolError):
        return Outcome.FINAL
    return Outcome.RETRY


def describe_error(error: httpx.HTTPError) -> str:
    if isinstance(error, httpx.TimeoutException):
        return f"timed out ({type(error).__name__})"
    if isinstance(error, httpx.ConnectError):
        return f"cannot connect: {error}"
    return f"{type(error).__name__}: {error}"


def next_step(
    outcome: Outcome, attempt: int, age: float, delays: list[float], max_age: float
) -> Step:
    """``attempt`` (from 1) came to ``outcome``, ``age`` seconds after the first try."""
    if outcome is Outcome.DELIVERED:
        return Step(ACK)
    if outcome is Outcome.FINAL:
        return Step(DEAD, reason="permanent")
    delay = delays[min(attempt, len(delays)) - 1]
    if age + delay > max_age:
        return Step(DEAD, reason="exhausted")
    return Step(RETRY, delay=delay)


def _read_some(response: httpx.Response) -> bytes:
    kept = bytearray()
    for chunk in response.iter_bytes():
        kept += chunk
        if len(kept) >= _READ_AT_MOST:
            break
    return bytes(kept)


def post(client: httpx.Client, url: str, payload: str, headers: dict[str, str]) -> Attempt:
    """POST ``payload`` (JSON) to ``url``; never raises for what the network or the endpoint
    does. The client's timeout bounds each phase of the request."""
    started = time.monotonic()
    try:
        with client.stream(
            "POST",
            url,
            content=payload.encode(),
            headers={**headers, "content-type": "application/json"},
        ) as response:
            body = _read_some(response)
            status = response.status_code
    except httpx.HTTPError as exc:
        return Attempt(
            classify_error(exc), 0, describe_error(exc), seconds=time.monotonic() - started
        )
    text = body[:MAX_RESPONSE].decode("utf-8", "replace")
    return Attempt(
        classify_status(status), status, f"HTTP {status}", text, time.monotonic() - started
    )
