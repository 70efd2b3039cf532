"""Sends whose outcome is unknown (RFC 1047): a worker that dies after the relay stored a
message but before it recorded the 250 leaves a job that is redelivered and sent again.

Just before an email's SMTP data goes out, the worker leaves an *in-flight mark* per
(job, recipient), written like a sent mark, without waiting for the reply (with a chained
email, in the same write as the sent mark of the one before it: no system call of its
own). A mark names the attempt (replay round and attempt number) and the delivery that
made it. The Redis round trip that reads a batch's recipients also reads the marks earlier
deliveries left (one more script in the same pipeline). When a later delivery of the *same*
attempt finds a mark made by another delivery and the recipient has no sent mark, the
earlier one may have reached the relay: the recipient is ambiguous. So at most one email
per sender thread is ambiguous after a crash, the one whose data was on its way.
``MAILFLEET_AMBIGUOUS`` says per lane what then happens: ``resend`` sends again, ``hold``
dead-letters it as ``ambiguous``. A retry (a new attempt) or the same delivery parked and
taken again is never ambiguous; a delivery handed back unsent drops its marks first (see
:meth:`InFlightMarks.release`).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from importlib.resources import files
from typing import Protocol

import redis

from mailfleet.shared import names as headers
from mailfleet.shared.job import EmailJob
from mailfleet.shared.names import Names
from mailfleet.shared.round_trip import ScriptCall
from mailfleet.worker.inbox import Delivery

_SCRIPT = files("mailfleet.worker").joinpath("inflight.lua").read_text()
# Long enough to outlast a dead worker's redelivery and the queue in front of it; a mark
# only matters to a delivery of the same attempt.
MARK_TTL = 6 * 3600.0


class Ambiguity(StrEnum):
    RESEND = "resend"
    HOLD = "hold"


def inflight_key(names: Names, job_id: str) -> str:
    return names.redis_key("inflight", job_id)


class Forgetter(Protocol):
    def forget_inflight(self, key: str, recipients: list[str]) -> None: ...

    def queue(self, commands: list[tuple[str | int, ...]]) -> None: ...

    def send_queued(self) -> None: ...


@dataclass(frozen=True)
class Mark:
    round: str
    delivery: str
    at: float


def _parse(found: bytes | str) -> Mark | None:
    text = found.decode() if isinstance(found, bytes) else found
    parts = text.split("|")
    if len(parts) != 3:
        return None
    try:
        return Mark(parts[0], parts[1], float(parts[2]))
    except ValueError:
        return None


def attempt_round(delivery: Delivery) -> str:
    """The attempt a delivery stands for: a replay from the dead letters starts a new round."""
    replays = delivery.headers.get(headers.REPLAYS, 0)
    return f"{replays if isinstance(replays, int) else 0}.{delivery.attempt}"


class InFlightMarks:
    """The marks of one worker process (``process`` tells its deliveries from others')."""

    def __init__(self, client: redis.Redis, names: Names, writer: Forgetter) -> None:
        self._names = names
        self._script = client.register_script(_SCRIPT)
        self._writer = writer
        self._process = secrets.token_hex(6)

    def _identity(self, delivery: Delivery) -> str:
        return f"{self._process}.{delivery.generation}.{delivery.delivery_tag}"

    def call(
        self, batch: Sequence[tuple[Delivery, EmailJob]], per_job: Sequence[list[str]]
    ) -> ScriptCall:
        """The script call that reads the marks earlier deliveries left for the batch's
        recipients (for ``run_together``)."""
        keys = [inflight_key(self._names, job.id) for _, job in batch]
        args: list[str | int] = []
        for recipients in per_job:
            args += [len(recipients), *recipients]
        return ScriptCall(self._script, keys, args)

    def lost_attempts(
        self,
        batch: Sequence[tuple[Delivery, EmailJob]],
        per_job: Sequence[list[str]],
        answer: Sequence[bytes | str],
    ) -> list[dict[str, float]]:
        """Per job, its recipients marked by another delivery of the same attempt, with the
        time of that attempt (whether they were sent is the sent ledger's to say)."""
        found = iter(answer)
        # A twin in this batch (one job id twice) marked just before: not an earlier send.
        ours = {self._identity(delivery) for delivery, _ in batch}
        lost: list[dict[str, float]] = []
        for (delivery, _), recipients in zip(batch, per_job, strict=True):
            round_ = attempt_round(delivery)
            earlier: dict[str, float] = {}
            for rcpt in recipients:
                mark = _parse(next(found))
                if mark is not None and mark.round == round_ and mark.delivery not in ours:
                    earlier[rcpt] = mark.at
            lost.append(earlier)
        return lost

    def leave(self, delivery: Delivery, job: EmailJob, recipients: list[str]) -> None:
        """Queue the marks of ``delivery``'s send to ``recipients``: they go out with the
        next write of the sender's ledger connection (see :meth:`write_queued`)."""
        if not recipients:
            return
        mark = f"{attempt_round(delivery)}|{self._identity(delivery)}|{time.time():.3f}"
        key = inflight_key(self._names, job.id)
        fields = [part for rcpt in recipients for part in (rcpt, mark)]
        self._writer.queue([("HSET", key, *fields), ("PEXPIRE", key, int(MARK_TTL * 1000))])

    def write_queued(self) -> None:
        """Write what is queued now, before the email's data goes out: a mark written after
        the data could miss a crash in between."""
        self._writer.send_queued()

    def release(self, job: EmailJob, recipients: list[str]) -> None:
        """This delivery goes back unsent: its marks must not make the next one ambiguous."""
        if recipients:
            self._writer.forget_inflight(inflight_key(self._names, job.id), recipients)
