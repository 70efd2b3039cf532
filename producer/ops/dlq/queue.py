"""Reading, replaying and purging the dead-letter queue ``{ns}.dead`` over a kombu connection.

Every operation takes messages with ``basic.get`` until the queue has none left and holds
them unacked (a channel never gets a held message twice, so it ends); letters that failed
after it began are held but not acted on, so it never loops over a job that dies again
while it runs. It acks only what it replays, skips or purges; closing its channel returns
every other message to the queue, untouched.

Replay is confirm-then-ack: a dead letter is acked only after the broker confirmed its copy
in the lane, so a crash in between duplicates a job (which the sent ledger absorbs), never
loses one. Before republishing, recipients the sent ledger or the suppression list rule out
are dropped; a letter with nobody left is acked and counted as skipped.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from amqp import spec
from kombu.connection import Connection

from mailfleet.producer.amqp_errors import CLOSE_ERRORS, broker_errors
from mailfleet.producer.ops.dlq.letter import DeadLetter, Selection, read_dead_letter
from mailfleet.producer.ops.dlq.replay import ConfirmedMover, replay_message
from mailfleet.producer.ops.dlq.report import Fingerprint, PurgeReport, ReplayReport
from mailfleet.shared.errors import MailfleetError
from mailfleet.shared.job import EmailJob
from mailfleet.shared.recipients import RecipientFilter
from mailfleet.shared.scope import Scope
from mailfleet.shared.settings import Settings

# Turns a message of the queue into a letter; None leaves the message out of the scan.
Reader = Callable[[Any], DeadLetter | None]


class DeadLetterScan:
    """Dead letters taken one by one and held unacked; ``close()`` hands back the rest.

    It takes until the queue has no more to give (letters it holds are never handed out
    again on its channel), so it ends; letters that failed after the scan began are held
    but not yielded, so a replayed job that dies again is left for the next run."""

    def __init__(
        self,
        connection: Connection,
        settings: Settings,
        *,
        queue: str | None = None,
        reader: Reader | None = None,
    ) -> None:
        self._settings = settings
        self._queue = queue or settings.names.dead_queue
        self._read: Reader = reader or (
            lambda message: read_dead_letter(message, settings.names, settings.job_limits)
        )
        self._connection = connection
        self._channel = connection.channel()
        # NotFound: not declared. The count is what the queue held ready as the scan began.
        _, self.ready, _ = self._channel.queue_declare(self._queue, passive=True)
        self._started = datetime.now(UTC).replace(microsecond=0)
        self.total = 0  # letters yielded
        self._held: dict[int, None] = {}  # delivery tags taken and not acked, in order
        self._acked = 0

    def __iter__(self) -> Iterator[DeadLetter]:
        while True:
            with broker_errors(self._queue):
                message = self._channel.basic_get(self._queue, no_ack=False)
            if message is None:
                return
            self._held[int(message.delivery_tag)] = None
            letter = self._read(message)
            if letter is None:
                continue
            if letter.failed_at is not None and letter.failed_at > self._started:
                # Failed while this scan runs (times are whole seconds, so a letter from the
                # scan's first second still counts): the next run's business.
                continue
            self.total += 1
            yield letter

    def ack(self, letter: DeadLetter) -> None:
        """Remove ``letter`` from the queue for good."""
        with broker_errors(self._queue):
            self._channel.basic_ack(letter.delivery_tag)
        self._held.pop(letter.delivery_tag, None)
        self._acked += 1

    def close(self, settle_within: float = 2.0) -> None:
        """Hand back every letter taken and not acked, then close the channel.

        They are handed back one by one, in the order they were taken, and the channel is
        closed only once they are all back: a quorum queue puts what a closing channel still
        held back in no particular order, which would shuffle the queue on every read (and
        a dashboard's pages, see paging.py). A quorum queue requeues asynchronously, so the
        wait also lets a command run right after this one see them."""
        with contextlib.suppress(*CLOSE_ERRORS):
            for tag in self._held:
                # basic.nack, not reject: RabbitMQ 4 counts a reject as a failed delivery
                # (a quorum queue drops a message past its delivery limit). py-amqp has no
                # basic_nack of its own.
                self._channel.send_method(spec.Basic.Nack, "Lbb", (tag, False, True))
            if self._held:
                self._wait_until_back(settle_within)
        with contextlib.suppress(*CLOSE_ERRORS):
            self._channel.close()

    def _wait_until_back(self, settle_within: float) -> None:
        # Back once the queue holds as many as when the scan began, less the acked (letters
        # that arrived meanwhile only add to it).
        wanted = max(len(self._held), self.ready - self._acked)
        deadline = time.monotonic() + settle_within
        while time.monotonic() < deadline:
            _, ready, _ = self._channel.queue_declare(self._queue, passive=True)
            if ready >= wanted:
                return
            time.sleep(0.005)


class Shown:
    """The "act only on what was shown" rule: with fingerprints from a preview, each passes
    as often as it was shown and no more; without them (``None``), every letter passes."""

    def __init__(self, only: Counter[Fingerprint] | None) -> None:
        self._left = None if only is None else Counter(only)

    def take(self, letter: DeadLetter) -> bool:
        if self._left is None:
            return True
        if self._left[letter.fingerprint] <= 0:
            return False
        self._left[letter.fingerprint] -= 1
        return True


class DeadLetterQueue:
    """The dead letters of one namespace; the caller owns (and releases) ``connection``."""

    def __init__(
        self,
        connection: Connection,
        settings: Settings,
        *,
        batch: int = 100,
        confirm_timeout: float = 30.0,
        queue: str | None = None,
        reader: Reader | None = None,
    ) -> None:
        self._connection = connection
        self._settings = settings
        self.queue = queue or settings.names.dead_queue
        self._reader = reader
        self._batch = batch
        self._confirm_timeout = confirm_timeout

    @contextlib.contextmanager
    def browse(self) -> Iterator[DeadLetterScan]:
        """A scan of the queue; every letter not acked in it goes back when it ends."""
        with broker_errors(self.queue):
            scan = DeadLetterScan(
                self._connection, self._settings, queue=self.queue, reader=self._reader
            )
        try:
            yield scan
        finally:
            scan.close()

    def letters(self, selection: Selection | None = None) -> list[DeadLetter]:
        """The dead letters that match ``selection``, read without removing any."""
        selection = selection or Selection()
        now = datetime.now(UTC)
        with self.browse() as scan:
            return [letter for letter in scan if selection.matches(letter, now)]

    def purge(
        self,
        selection: Selection,
        *,
        limit: int | None = None,
        dry_run: bool = False,
        only: Counter[Fingerprint] | None = None,
    ) -> PurgeReport:
        """Remove the matching dead letters for good (or, with ``dry_run``, count them);
        with ``only``, just those letters (fingerprints from an earlier dry run)."""
        now = datetime.now(UTC)
        shown = Shown(only)
        with self.browse() as scan:
            report = PurgeReport(total=0, dry_run=dry_run)
            for letter in scan:
                if not (selection.matches(letter, now) and shown.take(letter)):
                    continue
                if not dry_run:
                    scan.ack(letter)
                report.purged.append(letter.id)
                report.fingerprints.append(letter.fingerprint)
                if limit is not None and len(report.purged) >= limit:
                    break
            report.total = scan.total
        return report

    def replay(
        self,
        selection: Selection,
        check: RecipientFilter,
        *,
        limit: int | None = None,
        rate: float | None = None,
        dry_run: bool = False,
        only: Counter[Fingerprint] | None = None,
    ) -> ReplayReport:
        """Move matching dead letters back to their lanes; a broker or Redis failure stops
        the replay and is kept in ``report.error`` beside what was done until then. With
        ``only``, just those letters (fingerprints from an earlier dry run)."""
        now = datetime.now(UTC)
        shown = Shown(only)
        with self.browse() as scan:
            report = ReplayReport(total=0, dry_run=dry_run)
            mover = ConfirmedMover(
                self._connection,
                scan,
                report,
                batch=self._batch,
                rate=rate,
                confirm_timeout=self._confirm_timeout,
            )
            handled = 0
            queued: set[tuple[str, tuple[str, ...]]] = set()  # (job id, recipients) this run
            try:
                for letter in scan:
                    if not (selection.matches(letter, now) and shown.take(letter)):
                        continue
                    if letter.job is None:
                        report.invalid.append(letter.id)
                        continue
                    handled += 1
                    go_on = self._replay_one(
                        letter,
                        letter.job,
                        check=check,
                        scan=scan,
                        mover=mover,
                        report=report,
                        queued=queued,
                    )
                    if not go_on or (limit is not None and handled >= limit):
                        break
                mover.flush()
            except MailfleetError as exc:
                report.error = str(exc)
            finally:
                mover.close()
            report.total = scan.total
        return report

    def _replay_one(
        self,
        letter: DeadLetter,
        job: EmailJob,
        *,
        check: RecipientFilter,
        scan: DeadLetterScan,
        mover: ConfirmedMover,
        report: ReplayReport,
        queued: set[tuple[str, tuple[str, ...]]],
    ) -> bool:
        """Skip, or queue for republishing, one matching letter; False to stop replaying."""
        rechecked = check.split(job.id, letter.recipients, Scope.of(job))
        if not letter.recipients:
            report.invalid.append(letter.id)  # names no recipient at all: leave it be
            return True
        key = (job.id, tuple(rechecked.to_send))
        if rechecked.to_send and key in queued:
            # A second letter for the same job and recipients (at-least-once
            # dead-lettering): its twin is being replayed, so this one is not. It stays in
            # the queue until then: the next replay finds it already sent and removes it.
            report.skipped_sent.append(letter.id)
            return True
        queued.add(key)
        report.fingerprints.append(letter.fingerprint)
        if not rechecked.to_send:
            skipped = report.skipped_suppressed if rechecked.suppressed else report.skipped_sent
            skipped.append(letter.id)
            if not report.dry_run:
                scan.ack(letter)
            return True
        report.dropped_recipients += len(letter.recipients) - len(rechecked.to_send)
        if report.dry_run:
            report.replayed.append(letter.id)
            return True
        message = replay_message(letter, job, rechecked.to_send, self._settings.names.exchange)
        return mover.add(letter, message)
