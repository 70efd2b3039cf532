"""Which recipients of a job still need it: not yet accepted for this job id (the sent
ledger) and not suppressed. Read for a whole batch of jobs in one Redis call
(``recipients.lua``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from importlib.resources import files
from typing import Any

import redis

from mailfleet.shared.job import EmailJob
from mailfleet.shared.redis_client import redis_errors
from mailfleet.shared.sent_ledger import SentLedger
from mailfleet.shared.suppression import SuppressionList
from mailfleet.worker.inbox import Delivery
from mailfleet.worker.round_trip import ScriptCall, run_together

_SCRIPT = files("mailfleet.worker").joinpath("recipients.lua").read_text()
_TO_SEND, _SENT, _SUPPRESSED = 0, 1, 2


@dataclass(frozen=True)
class Recipients:
    to_send: list[str]
    already_sent: list[str]
    suppressed: list[str]


def wanted(delivery: Delivery, job: EmailJob) -> list[str]:
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

    def split_many(self, batch: Sequence[tuple[Delivery, EmailJob]]) -> list[Recipients]:
        """Each job's recipients, sorted into to send, already sent and suppressed."""
        per_job = [wanted(delivery, job) for delivery, job in batch]
        call = self.call(batch, per_job)
        with redis_errors("cannot read the sent ledger"):
            answer = self._script(keys=call.keys, args=call.args)
        return self.sort(per_job, answer)

    def split_with(
        self,
        batch: Sequence[tuple[Delivery, EmailJob]],
        per_job: Sequence[list[str]],
        others: Sequence[ScriptCall],
    ) -> tuple[list[Recipients], list[Any]]:
        """:meth:`split_many` with ``others`` in the same round trip: the recipients
        ``per_job`` (:func:`wanted`) of ``batch`` sorted, and the others' answers."""
        answers = run_together(self._client, [self.call(batch, per_job), *others])
        return self.sort(per_job, answers[0]), answers[1:]

    def call(
        self, batch: Sequence[tuple[Delivery, EmailJob]], per_job: Sequence[list[str]]
    ) -> ScriptCall:
        """The script call that reads the recipients ``per_job`` (:func:`wanted`) of
        ``batch``, to run with others."""
        keys = [self._suppression.key, *(self._ledger.key(job.id) for _, job in batch)]
        args: list[str | int] = []
        for recipients in per_job:
            args.append(len(recipients))
            args += [form for rcpt in recipients for form in (rcpt, rcpt.lower())]
        return ScriptCall(self._script, keys, args)

    @staticmethod
    def sort(per_job: Sequence[list[str]], answer: list[int]) -> list[Recipients]:
        """:meth:`call`'s answer as each job's recipients to send, already sent, suppressed."""
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
