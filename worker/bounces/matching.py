"""Which email a report is about: the sent reference of each recipient it concerns.

A report is matched by its VERP token (the envelope recipient it came to), else by the
``X-Mailfleet-Ref`` of the returned headers, else by their Message-ID. A token that does
not verify refuses the whole report: a forged bounce must never suppress anyone. A report
that matches no email of ours is ignored; mailfleet never acts on an address it only
read somewhere in a report.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailfleet.shared.sent_refs import SentRef, SentRefs
from mailfleet.shared.verp import ForgedToken, Verp, ref_digest
from mailfleet.worker.bounces.model import RecipientResult, Report


@dataclass(frozen=True)
class Match:
    """One recipient of one email of ours, and what the report says of it (DSNs)."""

    digest: str
    ref: SentRef
    result: RecipientResult | None = None


@dataclass(frozen=True)
class NoMatch:
    cause: str  # "forged token", "unknown token", "unmatched", ...


def match(report: Report, verp: Verp, refs: SentRefs) -> list[Match] | NoMatch:
    token = report.verp_token or report.mailfleet_ref
    if token:
        try:
            digest = verp.open(token)
        except ForgedToken as exc:
            return NoMatch(f"forged token ({exc})")
        found = refs.find(digest)
        if found is None:
            return NoMatch("unknown token (expired, or never sent from here)")
        return [Match(digest, found, _result_for(report, found.recipient))]
    if report.original_message_id:
        return _by_message_id(report, report.original_message_id, refs)
    return NoMatch("unmatched: no token and no Message-ID of ours")


def _result_for(report: Report, recipient: str) -> RecipientResult | None:
    """The DSN block about ``recipient``; else the worst block (a token names one recipient:
    an alias may have reported its expansion instead)."""
    if not report.recipients:
        return None
    for result in report.recipients:
        if result.recipient.lower() == recipient.lower():
            return result
    return max(report.recipients, key=_severity)


def _severity(result: RecipientResult) -> int:
    return 2 if result.hard else 1 if result.action == "delayed" else 0


def _by_message_id(report: Report, message_id: str, refs: SentRefs) -> list[Match] | NoMatch:
    sent = refs.sent_as(message_id)
    if sent is None:
        return NoMatch("unmatched: unknown Message-ID")
    job_id, recipients = sent
    named: list[tuple[str, RecipientResult | None]]
    if report.kind == "dsn":
        named = [(result.recipient, result) for result in report.recipients]
    elif report.original_recipient:
        named = [(report.original_recipient, None)]
    elif len(recipients) == 1:
        named = [(recipients[0], None)]
    else:
        return NoMatch("unmatched: the report names no recipient and the email had several")
    matches = []
    for recipient, result in named:
        digest = ref_digest(job_id, recipient)
        found = refs.find(digest)
        if found is not None:  # an address the email did not go to is not acted on
            matches.append(Match(digest, found, result))
    return matches or NoMatch("unmatched: no recipient of that email")
