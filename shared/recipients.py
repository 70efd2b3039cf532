"""Which recipients of a job still need it: not yet accepted for this job id (the sent
ledger) and not suppressed. The worker reads that for a whole batch of jobs in one Redis
call, ``mailfleet dlq replay`` for each dead letter it replays; both with ``recipients.lua``,
so a replay drops exactly the recipients a redelivery would skip."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from importlib.resources import files
from typing import Any, Protocol

import redis

from mailfleet.shared.job import EmailJob
from mailfleet.shared.names import Names
from mailfleet.shared.redis_client import redis_errors
from mailfleet.shared.round_trip import ScriptCall, run_together
from mailfleet.shared.scope import Scope
from mailfleet.shared.sent_ledger import SentLedger
from mailfleet.shared.suppression import SuppressionList

_SCRIPT = files("mailfleet.shared").joinpath("recipients.lua").read_text()
_TO_SEND, _SENT, _SUPPRESSED = 0, 1, 2


@dataclass(frozen=True)
class Recipients:
    """Recipients sorted: still to send to, accepted for the job already, suppressed."""

    to_send: list[str]
    already_sent: list[str]
    suppressed: list[str]


class Restricted(Protocol):
    """A message that may be for only some of its job's recipients (the worker's Delivery)."""

    @property
    def only_recipients(self) -> list[str] | None: ...


def wanted(delivery: Restricted, job: EmailJob) -> list[str]:
    """The job's recipients this delivery is for: all, or those an earlier attempt left."""
    recipients = job.recipients()
    only = delivery.only_recipients
    return recipients if only is None else [rcpt for rcpt in recipients if rcpt in only]


class RecipientFilter:
    def __init__(self, client: redis.Redis, ledger: SentLedger, suppression: SuppressionList):
        self._client = client
        self._ledger = ledger
        self._suppression = suppression
        self._script = client.register_script(_SCRIPT)

    @classmethod
    def reading(cls, client: redis.Redis, names: Names) -> RecipientFilter:
        """A filter of ``names``'s ledger and suppression list for a tool that only reads."""
        ledger = SentLedger(client, names, ttl_seconds=0)  # its TTL is for writing
        return cls(client, ledger, SuppressionList(client, names))

    def split(self, job_id: str, recipients: list[str], scope: Scope | None = None) -> Recipients:
        """``recipients`` of ``job_id`` sorted, in a round trip of their own; suppressions
        for ``scope`` (the job's, :meth:`Scope.of`) count too."""
        call = self._call([job_id], [recipients], [scope])
        with redis_errors("cannot read the sent ledger"):
            answer = self._script(keys=call.keys, args=call.args)
        return self._sort([recipients], answer)[0]

    def split_with(
        self,
        batch: Sequence[tuple[object, EmailJob]],
        per_job: Sequence[list[str]],
        others: Sequence[ScriptCall],
    ) -> tuple[list[Recipients], list[Any]]:
        """The recipients ``per_job`` (:func:`wanted`) of ``batch``'s jobs sorted, with
        ``others`` in the same round trip; and the others' answers."""
        scopes = [Scope.of(job) for _, job in batch]
        call = self._call([job.id for _, job in batch], per_job, scopes)
        answers = run_together(self._client, [call, *others])
        return self._sort(per_job, answers[0]), answers[1:]

    def _call(
        self,
        job_ids: Sequence[str],
        per_job: Sequence[list[str]],
        scopes: Sequence[Scope | None],
    ) -> ScriptCall:
        keys = [self._suppression.key, self._suppression.scoped_key]
        keys += [self._ledger.key(job_id) for job_id in job_ids]
        args: list[str | int] = []
        for recipients, scope in zip(per_job, scopes, strict=True):
            args += [scope.suffix if scope else "", len(recipients)]
            args += [form for rcpt in recipients for form in (rcpt, rcpt.lower())]
        return ScriptCall(self._script, keys, args)

    @staticmethod
    def _sort(per_job: Sequence[list[str]], answer: list[int]) -> list[Recipients]:
        """The script's answer (a verdict per recipient) as each job's :class:`Recipients`."""
        verdicts = iter(answer)
        results = []
        for recipients in per_job:
            by_verdict: dict[int, list[str]] = {_TO_SEND: [], _SENT: [], _SUPPRESSED: []}
            for rcpt in recipients:
                by_verdict[int(next(verdicts))].append(rcpt)
            results.append(
                Recipients(by_verdict[_TO_SEND], by_verdict[_SENT], by_verdict[_SUPPRESSED])
            )
        return results
