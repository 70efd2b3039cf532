"""Which recipients of a job still need it: not yet accepted for this job id (the sent
ledger) and not suppressed. Both are read from Redis in one round trip."""

from __future__ import annotations

from dataclasses import dataclass

import redis

from mailfleet.shared.errors import RedisUnavailable
from mailfleet.shared.job import EmailJob
from mailfleet.shared.redis_client import REDIS_DOWN
from mailfleet.shared.sent_ledger import SentLedger
from mailfleet.shared.suppression import SuppressionList
from mailfleet.worker.delivery import Delivery


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

    def split(self, delivery: Delivery, job: EmailJob) -> Recipients:
        wanted = job.recipients()
        only = delivery.only_recipients
        if only is not None:
            wanted = [rcpt for rcpt in wanted if rcpt in only]
        try:
            pipe = self._client.pipeline(transaction=False)
            pipe.hkeys(self._ledger.key(job.id))
            pipe.hmget(self._suppression.key, [rcpt.lower() for rcpt in wanted])
            sent_keys, suppressed_flags = pipe.execute()
        except REDIS_DOWN as exc:
            raise RedisUnavailable(f"cannot read the sent ledger: {exc}") from exc
        sent = {key.decode() if isinstance(key, bytes) else key for key in sent_keys}
        suppressed = {rcpt for rcpt, flag in zip(wanted, suppressed_flags, strict=True) if flag}
        return Recipients(
            to_send=[rcpt for rcpt in wanted if rcpt not in sent and rcpt not in suppressed],
            already_sent=[rcpt for rcpt in wanted if rcpt in sent],
            suppressed=[rcpt for rcpt in wanted if rcpt in suppressed and rcpt not in sent],
        )
