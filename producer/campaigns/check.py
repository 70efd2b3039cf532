"""The first pass over a recipient list: every row checked before anything is published.

A row's address and name must make a valid job, and its variables must render the template
(a real render, so a missing variable or a failing filter shows here, not in the worker).
An address met again (compared lower-cased) is a duplicate: folded into the first, with a
warning. Each problem is one ``row N: field: problem`` line.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from mailfleet.producer.campaigns.jobs import Campaign, digest, job_for
from mailfleet.producer.campaigns.rows import BadRow, Row
from mailfleet.shared.addresses import check_address
from mailfleet.shared.errors import InvalidJobError, RenderError
from mailfleet.shared.job import JobLimits
from mailfleet.shared.templates.render import CompiledTemplate, Renderer
from mailfleet.shared.text import has_line_break

_MAX_PROBLEMS = 1000  # beyond these, only counted: the first thousand show what is wrong


@dataclass
class CheckResult:
    rows: int = 0  # recipients read, duplicates included
    duplicates: set[int] = field(default_factory=set)  # row numbers folded into earlier rows
    problems: list[str] = field(default_factory=list)
    problem_count: int = 0

    def add(self, number: int, name: str, problem: str) -> None:
        self.problem_count += 1
        if len(self.problems) < _MAX_PROBLEMS:
            self.problems.append(f"row {number}: {name}: {problem}")


def _field(loc: str) -> str:
    """A job field as the row calls it: the recipient is the row's email."""
    return "email" if loc == "to" or loc.startswith("to.") else loc


def check_rows(
    rows: Iterable[Row | BadRow],
    campaign: Campaign,
    *,
    template: CompiledTemplate,
    renderer: Renderer,
    limits: JobLimits,
    warn: Callable[[str], None],
) -> CheckResult:
    result = CheckResult()
    seen: set[int] = set()  # 64 bits of each address's digest: a few MB for 100 000 rows
    for row in rows:
        if isinstance(row, BadRow):
            for name, problem in row.problems:
                result.add(row.number, name, problem)
            continue
        result.rows += 1
        try:
            check_address(row.email)
        except ValueError as exc:
            result.add(row.number, "email", str(exc))
            continue
        if row.name is not None and has_line_break(row.name):
            result.add(row.number, "name", "must be one line (no CR, LF or NUL)")
            continue
        try:
            job_for(campaign, row, limits)
        except InvalidJobError as exc:
            for loc, problem in exc.problems:
                result.add(row.number, _field(loc), problem)
            continue
        try:
            renderer.render(template, row.variables)
        except RenderError as exc:
            result.add(row.number, "variables", exc.problem)
            continue
        key = int(digest(row.email)[:16], 16)
        if key in seen:
            result.duplicates.add(row.number)
            warn(f"row {row.number}: email: {row.email} is a duplicate of an earlier row; folded")
        seen.add(key)
    return result
