"""The first pass over a recipient list: every row checked before anything is published.

A row's address, name and variables must make a valid job (the parts every row shares are
checked once, on the first good row), and its variables must render the template
(a real render, so a missing variable or a failing filter shows here, not in the worker).
An address met again (compared lower-cased) is a duplicate: folded into the first, with a
warning. Each problem is one ``row N: field: problem`` line.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from mailfleet.producer.campaigns.jobs import Campaign, check_row, digest, job_for
from mailfleet.producer.campaigns.rows import BadRow, Row
from mailfleet.shared.errors import InvalidJobError, RenderError
from mailfleet.shared.job import JobLimits
from mailfleet.shared.templates.render import CompiledTemplate, Renderer

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
    first = True
    for row in rows:
        if isinstance(row, BadRow):
            for name, problem in row.problems:
                result.add(row.number, name, problem)
            continue
        result.rows += 1
        problems = check_row(row)
        if not problems and first:
            first = False
            try:  # what every row shares (sender, window...), checked as any job is, once
                job_for(campaign, row, limits)
            except InvalidJobError as exc:
                problems = [(_field(loc), problem) for loc, problem in exc.problems]
        if problems:
            for name, problem in problems:
                result.add(row.number, name, problem)
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
