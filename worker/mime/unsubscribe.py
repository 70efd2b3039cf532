"""The one-click unsubscribe headers (RFC 2369 ``List-Unsubscribe``, RFC 8058
``List-Unsubscribe-Post``), added before the message is signed so that DKIM covers them.

Bulk mail carries them unless its job says ``"unsubscribe": false``; transactional mail
only when its job says ``"unsubscribe": true``. A job that sets its own List-Unsubscribe
header keeps it. The link's token names one recipient, so a message to several recipients
cannot carry one: it goes without, and a metric counts it.
"""

from __future__ import annotations

from enum import Enum

from mailfleet.shared.job import EmailJob, Lane
from mailfleet.shared.scope import Scope
from mailfleet.shared.unsubscribe_token import UnsubscribeTokens
from mailfleet.worker.mime.direct import fold

POST_VALUE = "List-Unsubscribe=One-Click"


class Outcome(Enum):
    ADDED = "added"
    NOT_ASKED = "not_asked"  # transactional, or the job turned it off, or set its own
    SEVERAL_RECIPIENTS = "several_recipients"


def wants_unsubscribe(job: EmailJob) -> bool:
    if any(name.lower() == "list-unsubscribe" for name in job.headers):
        return False
    return job.unsubscribe if job.unsubscribe is not None else job.lane is Lane.BULK


class ListUnsubscribe:
    """``List-Unsubscribe: <URL/u/TOKEN>[, <mailto:...>]`` and its one-click companion."""

    def __init__(self, base_url: str, tokens: UnsubscribeTokens, mailto: str | None) -> None:
        self._base = base_url.rstrip("/")
        self._tokens = tokens
        self._mailto = mailto

    def link(self, recipient: str, scope: Scope) -> str:
        return f"{self._base}/u/{self._tokens.make(recipient, scope)}"

    def headers(self, job: EmailJob, recipients: list[str]) -> tuple[Outcome, bytes]:
        """The header lines (CRLF-ended) for ``job`` sent to ``recipients``, and why so."""
        if not wants_unsubscribe(job):
            return Outcome.NOT_ASKED, b""
        if len(recipients) != 1:
            return Outcome.SEVERAL_RECIPIENTS, b""
        scope = Scope.of(job)
        targets = [f"<{self.link(recipients[0], scope)}>"]
        if self._mailto:
            subject = f"unsubscribe {scope.list_name}".replace(" ", "%20")
            targets.append(f"<mailto:{self._mailto}?subject={subject}>")
        lines = [
            fold("List-Unsubscribe", ", ".join(targets)),
            f"List-Unsubscribe-Post: {POST_VALUE}",
        ]
        return Outcome.ADDED, ("\r\n".join(lines) + "\r\n").encode("ascii")
