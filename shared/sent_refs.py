"""What a VERP token stands for: written by the worker when a relay accepts an email, read
by the bounce processor when a report comes back (see ``shared/verp.py``).

``{ns}:ref:<digest>`` holds a JSON object naming the job, the recipient, the lane, the
sender domain and the attempt; ``{ns}:msgid:<message-id>`` names the job of a Message-ID, for
complaints whose provider removed both the recipient and our header. Both live as long as
the sent ledger (``MAILFLEET_SENT_TTL``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import redis

from mailfleet.shared.names import Names
from mailfleet.shared.redis_client import redis_errors
from mailfleet.shared.reports import Command


@dataclass(frozen=True)
class SentRef:
    job_id: str
    recipient: str
    lane: str
    sender: str  # the sender domain
    attempt: int
    replays: int = 0

    def to_json(self) -> str:
        data = {
            "j": self.job_id,
            "r": self.recipient,
            "l": self.lane,
            "s": self.sender,
            "a": self.attempt,
            "p": self.replays,
        }
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: bytes | str) -> SentRef:
        data = json.loads(raw)
        return cls(
            str(data["j"]),
            str(data["r"]),
            str(data["l"]),
            str(data["s"]),
            int(data["a"]),
            int(data.get("p", 0)),
        )


class SentRefs:
    def __init__(self, client: redis.Redis, names: Names, ttl_seconds: float) -> None:
        self._client = client
        self._names = names
        self._ttl = int(ttl_seconds)

    def ref_key(self, digest: str) -> str:
        return self._names.redis_key("ref", digest)

    def message_key(self, message_id: str) -> str:
        return self._names.redis_key("msgid", message_id.strip("<> ").lower())

    def commands(self, digests: list[tuple[str, SentRef]], message_id: str) -> list[Command]:
        """What records ``digests`` (digest, reference) and the job of ``message_id``."""
        commands: list[Command] = [
            ("SET", self.ref_key(digest), ref.to_json(), "EX", self._ttl) for digest, ref in digests
        ]
        if digests:
            # The job, then the recipients this send reached: a complaint that names neither
            # recipient nor token can still be matched when there was only one.
            sent = "\n".join([digests[0][1].job_id, *(ref.recipient for _, ref in digests)])
            commands.append(("SET", self.message_key(message_id), sent, "EX", self._ttl))
        return commands

    def find(self, digest: str) -> SentRef | None:
        with redis_errors("cannot read the sent references"):
            raw = self._client.get(self.ref_key(digest))
        return None if raw is None else SentRef.from_json(raw)

    def sent_as(self, message_id: str) -> tuple[str, list[str]] | None:
        """The job of ``message_id`` and the recipients its last accepted send reached."""
        with redis_errors("cannot read the sent references"):
            raw = self._client.get(self.message_key(message_id))
        if raw is None:
            return None
        job_id, *recipients = (raw.decode() if isinstance(raw, bytes) else str(raw)).split("\n")
        return job_id, recipients
