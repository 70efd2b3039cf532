"""py-amqp, kombu and socket errors translated to ours: the producer side's one translator.

Every broker call of the producer and the ops tools runs inside :func:`broker_errors`, so
only mailfleet errors leave them. It stays on the producer side: the worker speaks pika,
whose errors :mod:`mailfleet.worker.broker.connection` translates.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator

import amqp.exceptions
import kombu.exceptions

from mailfleet.shared.errors import BrokerError, BrokerUnavailable
from mailfleet.shared.settings import unreachable_broker

# What a dead or unreachable connection raises, from kombu, py-amqp or the socket.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    kombu.exceptions.OperationalError,
    amqp.exceptions.RecoverableConnectionError,
    amqp.exceptions.ConnectionForced,
    ConnectionError,
    socket.timeout,
    OSError,
)
# What closing a channel on a connection that is already gone may raise; safe to ignore.
CLOSE_ERRORS: tuple[type[BaseException], ...] = (*CONNECTION_ERRORS, amqp.exceptions.AMQPError)


@contextlib.contextmanager
def broker_errors(
    name: str = "", *, kind: str = "queue", declaring: bool = False, url: str | None = None
) -> Iterator[None]:
    """Run a block of broker calls on the ``kind`` (queue or exchange) called ``name`` (or a
    pattern such as ``ns.*`` for calls on several); raise only mailfleet errors.

    ``declaring``: the calls declare it, so one that exists with other arguments gets its
    own advice. ``url``: the calls open a connection to it (messages name it, redacted).
    """
    try:
        yield
    except CONNECTION_ERRORS as exc:
        lost = "lost the connection to RabbitMQ" if url is None else unreachable_broker(url)
        raise BrokerUnavailable(f"{lost}: {exc}") from exc
    except amqp.exceptions.AMQPError as exc:
        if url is not None:  # e.g. ACCESS_REFUSED for a wrong password, an unknown vhost
            raise BrokerError(f"{unreachable_broker(url)}: {exc}") from exc
        raise _refusal(exc, name, kind, declaring=declaring) from exc


def _refusal(
    exc: amqp.exceptions.AMQPError, name: str, kind: str, *, declaring: bool
) -> BrokerError:
    if declaring and isinstance(exc, amqp.exceptions.PreconditionFailed):
        return BrokerError(
            f"{kind} {name} exists with other arguments ({exc.reply_text}); after an upgrade "
            "`mailfleet migrate` re-declares it, else choose another MAILFLEET_NAMESPACE"
        )
    if declaring:  # e.g. access refused
        return BrokerError(f"declaring {kind} {name} failed: {exc}")
    if isinstance(exc, amqp.exceptions.NotFound):
        # RabbitMQ's reply names the queue (or exchange) that is missing, and its vhost.
        return BrokerError(
            f"{kind} {name} does not exist ({exc.reply_text}): run `mailfleet declare` or "
            "check MAILFLEET_NAMESPACE"
        )
    return BrokerError(f"RabbitMQ refused an operation on {name}: {exc}")
