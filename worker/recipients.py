"""Which recipients of a job still need it: not yet accepted for this job id (the sent
ledger) and not suppressed. Both are read in one Redis call (``recipients.lua``)."""

from __future__ import annotations

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


class RecipientFilter:
    def __init__(self, client: redis.Redis, ledger: SentLedger, suppression: SuppressionList):
        self._client = client
        self._ledger = ledger
        self._suppression = suppression
        self._script = client.register_script(_SCRIPT)

    def split(self, delivery: Delivery, job: EmailJob) -> Recipients:
        wanted = job.recipients()
        only = delivery.only_recipients
        if only is not None:
            wanted = [rcpt for rcpt in wanted if rcpt in only]
        args = [form for rcpt in wanted for form in (rcpt, rcpt.lower())]
        try:
            verdicts = self._script(
                keys=[self._ledger.key(job.id), self._suppression.key], args=args
            )
        except REDIS_DOWN as exc:
            raise RedisUnavailable(f"cannot read the sent ledger: {exc}") from exc
        by_verdict: dict[int, list[str]] = {_TO_SEND: [], _SENT: [], _SUPPRESSED: []}
        for rcpt, verdict in zip(wanted, verdicts, strict=True):
            by_verdict[int(verdict)].append(rcpt)
        return Recipients(by_verdict[_TO_SEND], by_verdict[_SENT], by_verdict[_SUPPRESSED])
