"""A campaign's job for one recipient. Its id is ``<campaign id>:<digest of the lower-cased
address>``, the same on every run of the same campaign, so a rerun after an interruption
publishes the same ids and the sent ledger stops any second email."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mailfleet.producer.campaigns.rows import Row
from mailfleet.shared.addresses import check_address
from mailfleet.shared.job import EmailJob, JobLimits, Lane, parse_job
from mailfleet.shared.send_window import SendWindow
from mailfleet.shared.template_ref import TemplateRef, check_variables
from mailfleet.shared.text import has_line_break

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


def job_id(campaign: Campaign, row: Row) -> str:
    return f"{campaign.id}:{digest(row.email)}"


def job_data(campaign: Campaign, row: Row) -> dict[str, Any]:
    """The row's job in its wire form (JSON-ready: names as on the wire, times as text)."""
    data: dict[str, Any] = {
        "id": job_id(campaign, row),
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
        data["not_before"] = campaign.not_before.isoformat()
    return data


def job_wire(campaign: Campaign, row: Row) -> bytes:
    """The row's job as a message body, without validating it again: the check pass did
    (:func:`check_row` for what differs per row, :func:`job_for` once for the rest)."""
    return json.dumps(job_data(campaign, row), ensure_ascii=False).encode()


def check_row(row: Row) -> list[tuple[str, str]]:
    """What is wrong with the parts of a job that come from ``row``: its address, its name
    (one line; quoted when it holds specials), its variables' size. Empty when it is good."""
    try:
        check_address(row.email)
    except ValueError as exc:
        return [("email", str(exc))]
    if row.name is not None and has_line_break(row.name):
        return [("name", "must be one line (no CR, LF or NUL)")]
    problems = []
    try:
        check_address(display_address(row.name, row.email))
    except ValueError as exc:
        problems.append(("name", str(exc)))
    try:
        check_variables(row.variables)
    except ValueError as exc:
        problems.append(("variables", str(exc)))
    return problems


def job_for(campaign: Campaign, row: Row, limits: JobLimits) -> EmailJob:
    """The row's job, validated as any job is (InvalidJobError naming the field)."""
    return parse_job(job_data(campaign, row), limits)
