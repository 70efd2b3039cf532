"""Republishing dead letters to their lanes: the message, the pace, confirm-then-ack.

A dead letter is acked only after the broker confirmed its copy in the lane, so a crash in
between duplicates a job (the worker's sent ledger absorbs it), never loses one.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any, Protocol

from kombu.connection import Connection

from mailfleet.producer.amqp_errors import CLOSE_ERRORS, broker_errors
from mailfleet.producer.confirms import ConfirmChannel, Outgoing
from mailfleet.producer.ops.dlq.letter import DeadLetter
from mailfleet.producer.ops.dlq.report import ReplayReport
from mailfleet.shared import names as headers
from mailfleet.shared.job import CONTENT_TYPE, JOB_TYPE, EmailJob

# Headers of a dead letter that a replayed job must not carry back into its lane.
_DEAD_HEADERS = frozenset(
    {headers.REASON, headers.ERROR, headers.ATTEMPTS, headers.FAILED_AT, headers.LANE, headers.TIER}
)


class Acker(Protocol):
    def ack(self, letter: DeadLetter) -> None: ...


def replay_message(
    letter: DeadLetter, job: EmailJob, remaining: list[str], exchange: str
) -> Outgoing:
    """The job of ``letter`` as the producer would publish it, attempt 1, to its lane."""
    message_headers: dict[str, Any] = {
        name: value
        for name, value in letter.headers.items()
        if name not in _DEAD_HEADERS and not name.startswith(headers.BROKER_HEADERS)
    }
    message_headers[headers.ATTEMPT] = 1
    # A new round: its events are new facts (new ids) and come after the last round's.
    replays = letter.headers.get(headers.REPLAYS, 0)
    message_headers[headers.REPLAYS] = (replays if isinstance(replays, int) else 0) + 1
    only = remaining if letter.recipients_header or remaining != job.recipients() else None
    headers.write_recipients(message_headers, only)
    return Outgoing(
        exchange=exchange,
        routing_key=letter.lane,
        body=letter.body,
        message_id=job.id,
        properties={
            "content_type": CONTENT_TYPE,
            "type": JOB_TYPE,
            "delivery_mode": headers.PERSISTENT,
            "timestamp": int(time.time()),
            "application_headers": message_headers,
        },
    )


class _Pace:
    """At most ``rate`` messages a second, spaced evenly (no rate: no waiting)."""

    def __init__(self, rate: float | None) -> None:
        self._interval = 1.0 / rate if rate else 0.0
        self._next = time.monotonic()

    def wait(self) -> None:
        if not self._interval:
            return
        delay = self._next - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        self._next = max(self._next, time.monotonic()) + self._interval


class ConfirmedMover:
    """Publishes replays in batches with confirms; acks each dead letter once its copy is."""

    def __init__(
        self,
        connection: Connection,
        scan: Acker,
        report: ReplayReport,
        *,
        batch: int,
        rate: float | None,
        confirm_timeout: float,
    ) -> None:
        self._connection = connection
        self._scan = scan
        self._report = report
        self._batch = 1 if rate else batch
        self._pace = _Pace(rate)
        self._confirm_timeout = confirm_timeout
        self._channel: ConfirmChannel | None = None
        self._pending: list[tuple[DeadLetter, Outgoing]] = []

    def add(self, letter: DeadLetter, message: Outgoing) -> bool:
        """Queue one replay; False once the broker refused some (stop replaying then)."""
        # One job id at most once per batch, so each confirm names exactly one dead letter.
        if any(out.message_id == message.message_id for _, out in self._pending):
            self.flush()
        self._pace.wait()
        self._pending.append((letter, message))
        if len(self._pending) >= self._batch:
            self.flush()
        return not self._report.failed

    def flush(self) -> None:
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        with broker_errors("the lane queues"):
            if self._channel is None:
                self._channel = ConfirmChannel(self._connection, self._confirm_timeout)
            result = self._channel.publish([out for _, out in pending], window=len(pending))
        confirmed = set(result.confirmed)
        for letter, out in pending:
            if out.message_id in confirmed:
                self._scan.ack(letter)
                self._report.replayed.append(letter.id)
            else:
                self._report.failed.append(letter.id)

    def close(self) -> None:
        if self._channel is not None:
            with contextlib.suppress(*CLOSE_ERRORS):
                self._channel.close()
