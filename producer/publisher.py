"""The Producer: validated jobs in, broker-confirmed messages out.

``publish`` and ``publish_many`` return only once RabbitMQ confirmed every message
(persistent, ``mandatory``). A dropped connection is re-made and what was not confirmed is
published again (at-least-once; the worker's idempotency check absorbs a duplicate). A nack
or an unroutable message raises :class:`PublishNacked` / :class:`Unroutable` naming the ids.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable
from types import TracebackType
from typing import Any

import structlog
from kombu.connection import Connection

from mailfleet.producer.amqp_errors import broker_errors
from mailfleet.producer.confirms import ConfirmChannel, Outgoing
from mailfleet.producer.connection import open_connection
from mailfleet.producer.pinning import VersionPinner
from mailfleet.producer.topology import declare, topology_of
from mailfleet.shared.errors import (
    BrokerBlocked,
    BrokerUnavailable,
    MailfleetError,
    PublishNacked,
    Unroutable,
)
from mailfleet.shared.job import CONTENT_TYPE, JOB_TYPE, EmailJob, Lane
from mailfleet.shared.names import ATTEMPT, PERSISTENT
from mailfleet.shared.settings import Settings

log = structlog.get_logger("mailfleet.producer")


def job_message(job: EmailJob, exchange: str, headers: dict[str, Any] | None = None) -> Outgoing:
    """The AMQP message for ``job`` (wire contract v1), routed by its lane."""
    return wire_message(job.to_wire(), job.id, job.lane, exchange, headers)


def wire_message(
    body: bytes,
    job_id: str,
    lane: Lane,
    exchange: str,
    headers: dict[str, Any] | None = None,
    *,
    timestamp: float | None = None,
) -> Outgoing:
    """The AMQP message for a job already on the wire as ``body`` (checked by the caller);
    ``timestamp``, when the job was made (an outbox row's commit), else now."""
    return Outgoing(
        exchange=exchange,
        routing_key=lane.value,
        body=body,
        message_id=job_id,
        properties={
            "content_type": CONTENT_TYPE,
            "type": JOB_TYPE,
            "delivery_mode": PERSISTENT,
            # MAILFLEET_MAX_AGE counts from here
            "timestamp": int(time.time() if timestamp is None else timestamp),
            "application_headers": {ATTEMPT: 1, **(headers or {})},
        },
    )


def _named(messages: list[Outgoing], message_ids: list[str]) -> list[Outgoing]:
    wanted = set(message_ids)
    return [message for message in messages if message.message_id in wanted]


class Producer:
    """Publishes email jobs with publisher confirms. Use as a context manager, or ``close()``."""

    def __init__(
        self,
        settings: Settings,
        *,
        window: int = 2000,
        confirm_timeout: float | None = None,  # MAILFLEET_PUBLISH_TIMEOUT when None
        reconnect_attempts: int = 5,
        declare_topology: bool = True,
    ) -> None:
        self._settings = settings
        self._window = window
        self._confirm_timeout = confirm_timeout or settings.publish_timeout
        self._reconnect_attempts = reconnect_attempts
        self._connection: Connection | None = None
        self._channel: ConfirmChannel | None = None
        self._pinner = VersionPinner(settings)
        if declare_topology:
            declare(self._connect(), topology_of(settings))

    def __enter__(self) -> Producer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._pinner.close()
        if self._connection is not None:
            self._connection.release()
        self._connection = None
        self._channel = None

    def publish(self, job: EmailJob) -> str:
        """Publish one job; return its id once the broker confirmed it."""
        return self.publish_many([job])[0]

    def publish_many(self, jobs: Iterable[EmailJob]) -> list[str]:
        """Publish jobs with many confirms in flight; return their ids once all are confirmed.
        A job naming a stored template without a version is pinned to the newest first."""
        exchange = self._settings.names.exchange
        messages = [job_message(job, exchange) for job in self._pinner.pin(list(jobs))]
        self.publish_messages(messages)
        return [message.message_id for message in messages]

    def publish_messages(self, messages: list[Outgoing]) -> None:
        """Publish prepared messages (also used to retry and replay); raise on nack/unroutable."""
        nacked: list[str] = []
        unroutable: list[str] = []
        todo = messages
        # Every try shares one wait: a blocked broker fails the call after the timeout.
        deadline = time.monotonic() + self._confirm_timeout
        for attempt in range(self._reconnect_attempts + 1):
            channel = None
            try:
                with broker_errors(self._settings.names.exchange, kind="exchange"):
                    channel = self._confirm_channel()
                    result = channel.publish(todo, self._window, deadline)
            except BrokerBlocked:
                self.close()  # its unconfirmed publishes must not settle a later call
                raise
            except BrokerUnavailable as exc:
                if channel is not None:
                    refused = _named(todo, channel.settled_before_failure.nacked)
                    todo = [*channel.last_unsent, *refused]
                    unroutable += channel.settled_before_failure.unroutable
                self._recover(exc, attempt, len(todo), deadline)
                continue
            unroutable += result.unroutable
            if result.nacked and attempt < self._reconnect_attempts:
                # A quorum queue nacks while it has no leader (one is being elected after
                # its node died): publish those again after a pause. A queue that stays
                # full nacks every time and ends in PublishNacked.
                todo = _named(todo, result.nacked)
                log.warning("publish_nacked_retry", nacked=len(todo), attempt=attempt + 1)
                self._drop_channel()  # a new channel asks for the queue's new leader
                time.sleep(min(0.2 * 2**attempt, 5.0))
                continue
            nacked += result.nacked
            break
        if unroutable:
            raise Unroutable(
                "no queue is bound for these jobs (run `mailfleet declare`)", unroutable
            )
        if nacked:
            raise PublishNacked("the broker refused these jobs", nacked)

    def _recover(
        self, exc: BrokerUnavailable, attempt: int, unconfirmed: int, deadline: float
    ) -> None:
        """Drop the broken connection and back off before the next try (or give up: out
        of tries, or past the call's MAILFLEET_PUBLISH_TIMEOUT)."""
        self.close()
        if attempt >= self._reconnect_attempts or time.monotonic() >= deadline:
            raise BrokerUnavailable(f"publishing failed after {attempt + 1} tries: {exc}") from exc
        log.warning("publish_retry", error=str(exc), unconfirmed=unconfirmed, attempt=attempt + 1)
        time.sleep(min(0.2 * 2**attempt, 5.0))

    def _drop_channel(self) -> None:
        channel, self._channel = self._channel, None
        if channel is not None:
            with contextlib.suppress(MailfleetError), broker_errors(self._settings.names.exchange):
                channel.close()

    def _connect(self) -> Connection:
        if self._connection is None:
            self._connection = open_connection(self._settings)
        return self._connection

    def _confirm_channel(self) -> ConfirmChannel:
        if self._channel is None:
            self._channel = ConfirmChannel(self._connect(), self._confirm_timeout)
        return self._channel
