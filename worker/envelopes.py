"""A job's SMTP envelope: who the mail is from, to whom, and the message.

Without a bounce domain, the return path is the job's From address and one transaction
carries every recipient. With one (``shared/verp.py``), every recipient gets a return
path and an ``X-Mailfleet-Ref`` header of its own, so a job for several recipients becomes
one transaction per recipient, carried as the envelope's ``parts``.
"""

from __future__ import annotations

from mailfleet.shared.addresses import bare_address
from mailfleet.shared.job import EmailJob
from mailfleet.shared.verp import REF_HEADER, Verp
from mailfleet.worker.smtp.transport import Envelope


class Envelopes:
    def __init__(self, verp: Verp | None = None) -> None:
        self._verp = verp

    def of(self, job: EmailJob, recipients: list[str], message: bytes) -> Envelope:
        if self._verp is None:
            return Envelope(bare_address(job.from_), recipients, message)
        parts = tuple(self._own(job, rcpt, message) for rcpt in recipients)
        if len(parts) == 1:
            return parts[0]
        return Envelope(parts[0].sender, recipients, message, parts)

    def _own(self, job: EmailJob, recipient: str, message: bytes) -> Envelope:
        """``recipient``'s own transaction; the header goes first, where any header may."""
        assert self._verp is not None
        token = self._verp.token(job.id, recipient)
        header = f"{REF_HEADER}: {token}\r\n".encode()
        return Envelope(self._verp.return_path(token), [recipient], header + message)
