"""Reading jobs from JSON lines, validating every line before anything is published."""

from __future__ import annotations

import json
from collections.abc import Iterable

from mailfleet.shared.errors import InvalidJobError
from mailfleet.shared.job import EmailJob, JobLimits, parse_job


def read_jobs(lines: Iterable[str | bytes], limits: JobLimits) -> tuple[list[EmailJob], list[str]]:
    """Jobs from non-blank lines, and one ``line N: field: problem`` string per problem found."""
    jobs: list[EmailJob] = []
    problems: list[str] = []
    for number, raw in enumerate(lines, start=1):
        try:
            line = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        except UnicodeDecodeError:
            problems.append(f"line {number}: job: not UTF-8 text")
            continue
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(f"line {number}: job: not valid JSON ({exc.msg})")
            continue
        except RecursionError:
            problems.append(f"line {number}: job: JSON nested too deeply")
            continue
        if not isinstance(data, dict):
            problems.append(f"line {number}: job: must be a JSON object")
            continue
        try:
            jobs.append(parse_job(data, limits))
        except InvalidJobError as exc:
            problems += [f"line {number}: {field}: {problem}" for field, problem in exc.problems]
    return jobs, problems
