"""Noticing ``connection.blocked`` on a py-amqp connection (RabbitMQ's memory or disk alarm).

A blocked broker stops reading what its publishing connections send, so confirms stop
coming; knowing the connection is blocked lets a publish that times out say why. py-amqp
hears the frame but drops its reason ("low on memory"): its method table is told to read
the frame's one argument, on this connection only.
"""

from __future__ import annotations

from typing import Any

from amqp import spec
from kombu.connection import Connection

_REASON = "_mailfleet_blocked_reason"  # set on the py-amqp connection while it is blocked


def watch_blocked(connection: Connection) -> None:
    """Record ``connection.blocked`` / ``unblocked`` on ``connection`` (connected)."""
    raw: Any = connection.connection

    def blocked(reason: str = "") -> None:
        setattr(raw, _REASON, reason or "no reason given")

    def unblocked() -> None:
        setattr(raw, _REASON, None)

    raw._METHODS = {
        **type(raw)._METHODS,
        spec.Connection.Blocked: spec.method(spec.Connection.Blocked, "s"),
    }
    raw._callbacks[spec.Connection.Blocked] = blocked
    raw._callbacks[spec.Connection.Unblocked] = unblocked


def blocked_reason(connection: Connection) -> str | None:
    """Why the broker blocks ``connection`` now ("low on memory"), or None."""
    raw: Any = getattr(connection, "_connection", None)
    return getattr(raw, _REASON, None)
