"""What a sender thread commits at the end of a batch: the sent marks' replies, the events,
then the acks.

A sender takes several deliveries at once. For each email the relay accepts, the sent-ledger
mark is *written* to Redis at once, on a connection of the thread's own, without waiting for
the reply: Redis holds the mark as soon as it would after a round trip, so a worker killed
after the relay's 250 loses no more than SMTP's own lost-reply window. The replies are read
once per batch, and only then are the batch's acks handed to the consumer, in one wake-up:
ack-after-mark holds, at one Redis round trip per batch instead of one per email.
"""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from typing import Protocol

import redis
import structlog
from redis.connection import Connection

from mailfleet.shared.errors import MailfleetError, RedisUnavailable
from mailfleet.shared.events import Event
from mailfleet.shared.names import Names
from mailfleet.shared.redis_client import REDIS_DOWN, redis_errors
from mailfleet.shared.redis_ha import namespace_pool
from mailfleet.shared.send_history import SLOT_SECONDS, record_commands
from mailfleet.shared.socket_write import send_all
from mailfleet.worker.events import EventRecorder
from mailfleet.worker.inbox import Delivery

log = structlog.get_logger("mailfleet.worker")


def _send(connection: Connection, packed: list[bytes]) -> None:
    """What ``send_packed_command`` does for an open plain connection, without the poll()
    before each write (``shared/socket_write.py``); anything else goes through redis-py."""
    sock: socket.socket | None = getattr(connection, "_sock", None)
    if sock is None or type(sock) is not socket.socket:  # not yet open, or TLS
        connection.send_packed_command(packed, check_health=False)
        return
    try:
        for chunk in packed:
            send_all(sock, chunk)
    except OSError as exc:
        connection.disconnect()
        raise redis.ConnectionError(f"Error while writing to socket: {exc}") from exc


class WriteAheadLedger:
    """The sent ledger's ``mark``, pipelined: written now, its replies read by :meth:`flush`.

    Same keys and effect as :class:`~mailfleet.shared.sent_ledger.SentLedger`: a hash per
    job id (recipient → time) kept for the ledger's TTL, the delivered counter and its
    10-second slot (``shared/send_history.py``).
    """

    def __init__(self, client: redis.Redis, names: Names, ttl_seconds: float) -> None:
        self._client = client
        self._pool = namespace_pool(client, names)
        self._names = names
        self._ttl = int(ttl_seconds)
        self._connection: Connection | None = None
        self._unread = 0  # replies written for and not yet read
        self._delivered: Counter[float] = Counter()  # slot start -> recipients marked
        self._queued: list[tuple[str | int, ...]] = []  # counters, sent with the next write

    def queue(self, commands: list[tuple[str | int, ...]]) -> None:
        """Commands that may wait: written with the next mark, or at :meth:`flush`."""
        self._queued += commands

    def mark(self, job_id: str, recipients: list[str]) -> None:
        """Record that the relay accepted ``job_id`` for ``recipients``: sent to Redis now.
        The delivered counters are summed and written at :meth:`flush`, once a batch: three
        fewer commands an email (a crash before the flush undercounts them, and only them:
        the marks are the ledger)."""
        key = self._names.sent_ledger(job_id)
        now = time.time()
        stamp = str(now)
        fields = [part for rcpt in recipients for part in (rcpt, stamp)]
        commands: list[tuple[str | int, ...]] = [("HSET", key, *fields), ("EXPIRE", key, self._ttl)]
        self._write(commands, "cannot write the sent ledger")
        self._delivered[now // SLOT_SECONDS * SLOT_SECONDS] += len(recipients)

    def _counter_commands(self) -> list[tuple[str | int, ...]]:
        """The delivered counter and its 10-second slots, for the marks since the last flush."""
        if not self._delivered:
            return []
        delivered, self._delivered = self._delivered, Counter()
        commands: list[tuple[str | int, ...]] = [
            ("INCRBY", self._names.delivered_counter, sum(delivered.values()))
        ]
        for at, count in delivered.items():
            commands += record_commands(self._names, count, at)
        return commands

    def _write(self, commands: list[tuple[str | int, ...]], failure: str) -> None:
        commands = [*self._queued, *commands]
        self._queued = []
        try:
            with redis_errors(failure):
                connection = self._connection or self._connect()
                # No health-check PING: its reply would be read in place of an unread mark's.
                _send(connection, connection.pack_commands(commands))
        except RedisUnavailable:
            self._discard()
            raise
        self._unread += len(commands)

    def forget_inflight(self, key: str, recipients: list[str]) -> None:
        """Drop in-flight marks (``worker/inflight.py``) of a delivery handed back unsent,
        written like a sent mark: now, behind anything queued (a mark queued for the same
        delivery must not land after its removal), its reply read at the flush. Not written
        (Redis away) it only makes the next delivery ambiguous, which errs on the safe side."""
        self._queued.append(("HDEL", key, *recipients))
        self.send_queued()

    def send_queued(self) -> None:
        """Write the queued commands now (no-op when none): the in-flight marks must be in
        Redis before their email's data leaves. Not written (Redis away), they only leave
        that email unmarked, which errs toward sending it again after a crash."""
        if not self._queued:
            return
        try:
            self._write([], "cannot write the in-flight marks")
        except RedisUnavailable as exc:
            log.warning("inflight_marks_not_written", error=str(exc))

    def flush(self) -> None:
        """Read the replies of every mark written since the last flush. A failure is logged,
        never raised: the relay accepted those emails, so acking them is still right."""
        self._queued += self._counter_commands()
        if self._queued:
            try:
                self._write([], "cannot write the report counters")
            except RedisUnavailable as exc:
                log.warning("counters_write_failed", error=str(exc))
        if not self._unread or self._connection is None:
            return
        unread, self._unread = self._unread, 0
        try:
            for _ in range(unread):
                self._connection.read_response()
        except REDIS_DOWN as exc:
            log.warning("sent_mark_failed", error=str(exc), replies_unread=unread)
            self._discard()

    def close(self) -> None:
        self.flush()
        if self._connection is not None:
            self._pool.release(self._connection)
            self._connection = None

    def _connect(self) -> Connection:
        self._pool = namespace_pool(self._client, self._names)  # a cluster's slot may move
        self._connection = self._pool.get_connection()
        return self._connection

    def _discard(self) -> None:
        """Drop a connection whose replies are out of step; the next mark opens a new one."""
        self._unread = 0
        if self._connection is not None:
            self._connection.disconnect()
            self._pool.release(self._connection)
            self._connection = None


class Settling(Protocol):
    def ack_many(self, deliveries: list[Delivery]) -> None: ...

    def requeue(self, delivery: Delivery) -> None: ...


class HeldAcks:
    """An acker that holds acks until the batch's marks are read; requeues go at once."""

    def __init__(self, consumer: Settling) -> None:
        self._consumer = consumer
        self._held: list[Delivery] = []

    def ack(self, delivery: Delivery) -> None:
        self._held.append(delivery)

    def requeue(self, delivery: Delivery) -> None:
        self._consumer.requeue(delivery)

    def release(self) -> None:
        held, self._held = self._held, []
        if held:
            self._consumer.ack_many(held)

    def drop(self) -> None:
        """Forget the held acks: the broker hands those messages out again."""
        self._held = []


class Flushable(Protocol):
    def flush(self) -> None: ...


class EventSink(Protocol):
    def publish(self, events: list[Event]) -> None: ...

    def close(self) -> None: ...


class BatchCommit:
    """End of a batch: read the marks' replies, publish the batch's events and wait for
    their confirms, then let the acks go."""

    def __init__(
        self,
        ledger: WriteAheadLedger,
        acks: HeldAcks,
        events: EventRecorder | None = None,
        sink: EventSink | None = None,
        stopping: threading.Event | None = None,
        *,
        tally: Flushable | None = None,
        campaigns: Flushable | None = None,
    ) -> None:
        self.tally = tally
        self.campaigns = campaigns  # per-campaign counters (worker/campaign_counts.py)
        self.ledger = ledger
        self.acks = acks
        self.events = events or EventRecorder(enabled=False)
        self._sink = sink
        self._stopping = stopping or threading.Event()

    def commit(self) -> None:
        if self.tally is not None:
            self.tally.flush()  # its counts go out with the marks' replies read
        if self.campaigns is not None:
            self.campaigns.flush()
        self.ledger.flush()
        if self._publish_events():
            self.acks.release()
        else:  # stopping with the broker away: unacked, the jobs come back, their emails not
            self.acks.drop()

    def close(self) -> None:
        self.commit()
        self.ledger.close()
        if self._sink is not None:
            self._sink.close()

    def _publish_events(self) -> bool:
        """Publish the batch's events, retrying while the broker is away: an email's job is
        acked only once its events are confirmed. False if the worker stops first."""
        events = self.events.take()
        if not events or self._sink is None:
            return True
        backoff = 0.5
        while True:
            try:
                self._sink.publish(events)
                return True
            except MailfleetError as exc:
                log.warning("events_publish_failed", error=str(exc), events=len(events))
            if self._stopping.wait(backoff):
                return False
            backoff = min(backoff * 2, 5.0)
