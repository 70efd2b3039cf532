"""What a replay must not send again: recipients already sent and suppressed recipients.

Reads the worker's sent ledger (the Redis hash ``{ns}:sent:{job_id}`` whose fields are the
recipients a relay already accepted; see ``shared/sent_ledger.py``) and the suppression
list. Both are read only, so a dry run can use this too.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from mailfleet.shared.names import Names
from mailfleet.shared.sent_ledger import SentLedger
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
        self._ledger = SentLedger(client, names, ttl_seconds=0)  # read only here

    def check(self, job_id: str, recipients: list[str]) -> Rechecked:
        sent = self._ledger.sent_to(job_id)
        already_sent = [rcpt for rcpt in recipients if rcpt in sent]
        unsent = [rcpt for rcpt in recipients if rcpt not in sent]
        suppressed = self._suppression.which(unsent)
        return Rechecked(
            remaining=[rcpt for rcpt in unsent if rcpt not in suppressed],
            already_sent=already_sent,
            suppressed=[rcpt for rcpt in unsent if rcpt in suppressed],
        )
