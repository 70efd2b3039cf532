"""Publishing a batch on one py-amqp channel with many publisher confirms in flight.

kombu's own ``confirm_publish`` waits for each confirm before the next publish (one round
trip per message); here we publish up to ``window`` messages ahead and settle them as the
broker's acks, nacks and returns (for ``mandatory``) arrive.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import amqp
from kombu.connection import Connection

from mailfleet.producer.coalesce import CoalescedWrites
from mailfleet.shared.errors import BrokerUnavailable


@dataclass(frozen=True)
class Outgoing:
    """One message to publish: where to, its body and its AMQP properties."""

    exchange: str
    routing_key: str
    body: bytes
    message_id: str
    properties: dict[str, Any] = field(default_factory=dict)


@dataclass
class BatchResult:
    """How the broker settled a batch."""

    confirmed: list[str] = field(default_factory=list)
    nacked: list[str] = field(default_factory=list)
    unroutable: list[str] = field(default_factory=list)


class ConfirmChannel:
    """A channel in confirm mode that tracks delivery tags itself."""

    def __init__(self, connection: Connection, confirm_timeout: float) -> None:
        self._connection = connection
        self._channel = connection.channel()
        self._channel.confirm_select()
        self._confirm_timeout = confirm_timeout
        self._next_tag = 1
        self._pending: dict[int, Outgoing] = {}
        self._returned: set[str] = set()
        self._result = BatchResult()
        self._writes: CoalescedWrites | None = None
        self.last_unsent: list[Outgoing] = []
        self.settled_before_failure = BatchResult()
        self._channel.events["basic_ack"].add(self._on_ack)
        self._channel.events["basic_nack"].add(self._on_nack)
        self._channel.events["basic_return"].add(self._on_return)

    def close(self) -> None:
        self._channel.close()

    def publish(self, messages: Iterable[Outgoing], window: int) -> BatchResult:
        """Publish all ``messages``; return once every one is confirmed, nacked or returned."""
        self._result = BatchResult()
        todo = list(messages)
        handed_over = 0  # todo[:handed_over] are handed to py-amqp and tracked in _pending
        self._writes = CoalescedWrites(self._connection.connection)
        try:
            with self._writes:
                for message in todo:
                    self._send(message)
                    handed_over += 1
                    while len(self._pending) >= window:
                        self._wait()
                while self._pending:
                    self._wait()
        except Exception:
            # The connection failed: keep whatever the broker never confirmed, to publish again.
            self.last_unsent = [*self._pending.values(), *todo[handed_over:]]
            self.settled_before_failure = self._result  # nacks and returns must not be lost
            self._pending.clear()
            raise
        finally:
            self._writes = None
        return self._result

    def _send(self, message: Outgoing) -> None:
        self._channel.basic_publish(
            amqp.Message(message.body, message_id=message.message_id, **message.properties),
            exchange=message.exchange,
            routing_key=message.routing_key,
            mandatory=True,
        )
        self._pending[self._next_tag] = message
        self._next_tag += 1

    def _wait(self) -> None:
        if self._writes is not None:
            self._writes.flush()  # the broker confirms only what it was sent
        try:
            self._connection.drain_events(timeout=self._confirm_timeout)
        except TimeoutError as exc:
            raise BrokerUnavailable(
                f"no publisher confirm within {self._confirm_timeout:.0f}s"
            ) from exc

    def _settled(self, delivery_tag: int, multiple: bool) -> list[Outgoing]:
        if not multiple:
            message = self._pending.pop(delivery_tag, None)
            return [] if message is None else [message]
        tags = [tag for tag in self._pending if tag <= delivery_tag]
        return [self._pending.pop(tag) for tag in tags]

    def _on_ack(self, delivery_tag: int, multiple: bool) -> None:
        for message in self._settled(delivery_tag, multiple):
            if message.message_id in self._returned:
                self._returned.discard(message.message_id)
                self._result.unroutable.append(message.message_id)
            else:
                self._result.confirmed.append(message.message_id)

    def _on_nack(self, delivery_tag: int, multiple: bool) -> None:
        self._result.nacked += [m.message_id for m in self._settled(delivery_tag, multiple)]

    def _on_return(self, exc: Exception, exchange: str, routing_key: str, message: Any) -> None:
        self._returned.add(message.properties.get("message_id", ""))
