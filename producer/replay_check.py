"""What a replay must not send again: recipients already sent and suppressed recipients.

Reads the worker's sent ledger (the Redis hash ``{ns}:sent:{job_id}`` whose fields are the
recipients a relay already accepted; see ``worker/idempotency.py``) and the suppression
list. Both are read only, so a dry run can use this too.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from mailfleet.producer.redis_client import REDIS_DOWN
from mailfleet.shared.errors import RedisUnavailable
from mailfleet.shared.names import Names
from mailfleet.shared.suppression import SuppressionList


@dataclass(frozen=True)
class Rechecked:
    """``recipients`` split: those to send again, and why the others are dropped."""

    remaining: list[str]
    already_sent: list[str]
    suppressed: list[str]


class ReplayCheck:
    def __init__(self, client: redis.Redis, names: Names) -> None:
        self._client = client
        self._names = names
        self._suppression = SuppressionList(client, names)

    def sent_to(self, job_id: str) -> set[str]:
        """Recipients of ``job_id`` a relay already accepted (the worker's sent ledger)."""
        try:
            keys = self._client.hkeys(self._names.redis_key("sent", job_id))
        except REDIS_DOWN as exc:
            raise RedisUnavailable(f"cannot read the sent ledger: {exc}") from exc
        return {key.decode() if isinstance(key, bytes) else str(key) for key in keys}

    def check(self, job_id: str, recipients: list[str]) -> Rechecked:
        sent = self.sent_to(job_id)
        already_sent = [rcpt for rcpt in recipients if rcpt in sent]
        unsent = [rcpt for rcpt in recipients if rcpt not in sent]
        suppressed = self._suppression.which(unsent)
        return Rechecked(
            remaining=[rcpt for rcpt in unsent if rcpt not in suppressed],
            already_sent=already_sent,
            suppressed=[rcpt for rcpt in unsent if rcpt in suppressed],
        )
