"""Helpers for the template and campaign tests: stored templates, recipient files, commands."""

from __future__ import annotations

import csv
import subprocess
from pathlib import Path

import redis

from mailfleet.shared.settings import Settings
from mailfleet.shared.template_ref import TemplateSource
from mailfleet.shared.templates.store import TemplateStore
from tests.integration.helpers import mailfleet_command, settings_env

WELCOME = TemplateSource(
    subject="Hello {{ name }}",
    text="Dear {{ name }}, your code is {{ code }}.",
    html="<p>Dear {{ name }}, your code is {{ code }}.</p>",
)
SENDER = "Shop <shop@example.com>"


def put_template(
    redis_client: redis.Redis, settings: Settings, name: str, source: TemplateSource = WELCOME
) -> int:
    version, _ = TemplateStore(redis_client, settings.names).put(name, source)
    return version


def write_recipients(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as target:
        writer = csv.DictWriter(target, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def people(count: int) -> list[dict[str, str]]:
    return [
        {"email": f"person{n}@example.org", "name": f"Person {n}", "code": str(1000 + n)}
        for n in range(count)
    ]


def campaign_args(template: str, recipients: Path, *extra: str) -> list[str]:
    return mailfleet_command(
        "campaign",
        "send",
        "--template",
        template,
        "--recipients",
        str(recipients),
        "--from",
        SENDER,
        *extra,
    )


def run(settings: Settings, command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command,
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
