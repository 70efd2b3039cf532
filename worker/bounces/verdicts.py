"""What a matched report does to one recipient: a hard bounce, a soft bounce, a complaint,
or nothing (a report that only says the mail was delivered or relayed)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from mailfleet.worker.bounces.matching import Match
from mailfleet.worker.bounces.model import Report


class Verdict(StrEnum):
    HARD = "hard bounce"
    SOFT = "soft bounce"
    COMPLAINT = "complaint"
    NOTHING = "no failure"


@dataclass(frozen=True)
class Finding:
    match: Match
    verdict: Verdict
    status: str = ""  # the DSN's Status, "5.1.1"
    detail: str = ""  # the diagnostic, or the feedback type

    @property
    def reason(self) -> str:
        """The suppression list's reason: what came back, and about which job."""
        words = " ".join(part for part in (self.verdict.value, self.status) if part)
        detail = f": {self.detail}" if self.detail else ""
        return f"{words}{detail} (job {self.match.ref.job_id})"


def finding(report: Report, match: Match) -> Finding:
    if report.kind == "complaint":
        return Finding(match, Verdict.COMPLAINT, detail=report.feedback_type or "abuse")
    result = match.result
    if result is None:
        return Finding(match, Verdict.NOTHING)
    detail = result.diagnostic[:300]
    if result.hard:
        return Finding(match, Verdict.HARD, result.status, detail)
    if result.action == "delayed" or result.status.startswith("4."):
        return Finding(match, Verdict.SOFT, result.status, detail)
    return Finding(match, Verdict.NOTHING, result.status, result.action)
