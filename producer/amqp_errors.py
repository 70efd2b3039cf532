"""py-amqp, kombu and socket errors translated to ours, for the ops tools' broker calls.

It stays on the producer side: the worker speaks pika, whose errors
:mod:`mailfleet.worker.broker.connection` translates.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import amqp.exceptions

from mailfleet.producer.connection import CONNECTION_ERRORS
from mailfleet.shared.errors import BrokerError, BrokerUnavailable

# What closing a channel on a connection that is already gone may raise; safe to ignore.
CLOSE_ERRORS: tuple[type[BaseException], ...] = (*CONNECTION_ERRORS, amqp.exceptions.AMQPError)


@contextlib.contextmanager
def broker_errors(queue: str) -> Iterator[None]:
    """Run a block of broker calls about ``queue`` (a name, or a pattern such as ``ns.*`` for
    calls on several queues); raise only mailfleet errors."""
    try:
        yield
    except amqp.exceptions.NotFound as exc:
        # RabbitMQ's reply names the queue (or exchange) that is missing, and its vhost.
        raise BrokerError(
            f"queue {queue} does not exist ({exc.reply_text}): run `mailfleet declare` or "
            "check MAILFLEET_NAMESPACE"
        ) from exc
    except CONNECTION_ERRORS as exc:
        raise BrokerUnavailable(f"lost the connection to RabbitMQ: {exc}") from exc
    except amqp.exceptions.AMQPError as exc:
        raise BrokerError(f"RabbitMQ refused an operation on {queue}: {exc}") from exc
