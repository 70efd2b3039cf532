"""A campaign's job for one recipient. Its id is ``<campaign id>:<digest of the lower-cased
address>``, the same on every run of the same campaign, so a rerun after an interruption
publishes the same ids and the sent ledger stops any second email."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mailfleet.producer.campaigns.rows import Row
from mailfleet.shared.job import EmailJob, JobLimits, Lane, parse_job
from mailfleet.shared.send_window import SendWindow
from mailfleet.shared.template_ref import TemplateRef

_SPECIALS = re.compile(r'[()<>\[\]:;@\\,."]')
_DIGEST_CHARS = 32  # 128 bits of SHA-256: ids stay short, collisions stay out of reach


@dataclass(frozen=True)
class Campaign:
    """What every job of a campaign shares."""

    id: str
    template: TemplateRef  # pinned: a stored template's version is set
    sender: str
    lane: Lane = Lane.BULK
    window: SendWindow | None = None
    not_before: datetime | None = None


def digest(address: str) -> str:
    """The hex digest that stands for a recipient in the job id and the published set."""
    return hashlib.sha256(address.lower().encode()).hexdigest()[:_DIGEST_CHARS]


def display_address(name: str | None, email: str) -> str:
    """``Ann Lee <ann@example.org>``, the name quoted when it holds specials."""
    if not name:
        return email
    if _SPECIALS.search(name):
        quoted = name.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{quoted}" <{email}>'
    return f"{name} <{email}>"


def job_data(campaign: Campaign, row: Row) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": f"{campaign.id}:{digest(row.email)}",
        "from": campaign.sender,
        "to": [display_address(row.name, row.email)],
        "lane": campaign.lane.value,
        "template": campaign.template.model_dump(exclude_none=True),
        "variables": row.variables,
        "campaign": campaign.id,
    }
    if campaign.window is not None:
        data["window"] = campaign.window.model_dump()
    if campaign.not_before is not None:
        data["not_before"] = campaign.not_before
    return data


def job_for(campaign: Campaign, row: Row, limits: JobLimits) -> EmailJob:
    """The row's job, validated as any job is (InvalidJobError naming the field)."""
    return parse_job(job_data(campaign, row), limits)
