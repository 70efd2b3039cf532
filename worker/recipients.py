"""Which recipients of a job still need it: not yet accepted for this job id (the sent
ledger) and not suppressed. Read for a whole batch of jobs in one Redis call
(``recipients.lua``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from importlib.resources import files

import redis

from mailfleet.shared.errors import RedisUnavailable
from mailfleet.shared.job import EmailJob
from mailfleet.shared.redis_client import REDIS_DOWN
from mailfleet.shared.sent_ledger import SentLedger
from mailfleet.shared.suppression import SuppressionList
from mailfleet.worker.delivery import Delivery

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
        self._ledger = ledger
        self._suppression = suppression
        self._script = client.register_script(_SCRIPT)

    def split_many(self, batch: Sequence[tuple[Delivery, EmailJob]]) -> list[Recipients]:
        """Each job's recipients, sorted into to send, already sent and suppressed."""
        per_job = [wanted(delivery, job) for delivery, job in batch]
        keys = [self._suppression.key, *(self._ledger.key(job.id) for _, job in batch)]
        args: list[str | int] = []
        for recipients in per_job:
            args.append(len(recipients))
            args += [form for rcpt in recipients for form in (rcpt, rcpt.lower())]
        try:
            verdicts = iter(self._script(keys=keys, args=args))
        except REDIS_DOWN as exc:
            raise RedisUnavailable(f"cannot read the sent ledger: {exc}") from exc
        results = []
        for recipients in per_job:
            by_verdict: dict[int, list[str]] = {_TO_SEND: [], _SENT: [], _SUPPRESSED: []}
            for rcpt in recipients:
                by_verdict[int(next(verdicts))].append(rcpt)
            results.append(
                Recipients(by_verdict[_TO_SEND], by_verdict[_SENT], by_verdict[_SUPPRESSED])
            )
        return results
