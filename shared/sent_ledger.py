"""The sent ledger: which recipients of a job id the relay already accepted.

A hash per job id (``{ns}:sent:{id}`` → recipient → time), kept for ``MAILFLEET_SENT_TTL``.
Marked the moment the relay accepts, checked before every send, so a redelivery after a
crash, or a replay, never mails a recipient twice.
"""

from __future__ import annotations

import time
from importlib.resources import files

import redis

from mailfleet.shared.names import Names
from mailfleet.shared.redis_client import redis_errors
from mailfleet.shared.send_history import KEEP_SECONDS, slot_of

_MARK = files("mailfleet.shared").joinpath("sent_ledger_mark.lua").read_text()


class SentLedger:
    def __init__(self, client: redis.Redis, names: Names, ttl_seconds: float) -> None:
        self._client = client
        self._names = names
        self._ttl = int(ttl_seconds)
        self._mark = client.register_script(_MARK)

    def key(self, job_id: str) -> str:
        return self._names.sent_ledger(job_id)

    def mark(self, job_id: str, recipients: list[str]) -> None:
        """Record that the relay accepted ``job_id`` for ``recipients`` (one round trip).

        Also counts them in ``{ns}:stats:delivered``, which ``mailfleet stats`` reads as a rate,
        and in its 10-second slot, which the dashboard charts.
        """
        now = time.time()
        keys = [self.key(job_id), self._names.delivered_counter]
        keys.append(self._names.delivered_slot(slot_of(now)))
        with redis_errors("cannot write the sent ledger"):
            self._mark(keys=keys, args=[self._ttl, str(now), KEEP_SECONDS, *recipients])
