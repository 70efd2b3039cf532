"""The job's JSON Schema (docs/schema/job.json) accepts the jobs the docs show and refuses
malformed ones, as mailfleet itself does."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from mailfleet.shared.errors import InvalidJobError
from mailfleet.shared.job import parse_job

ROOT = Path(__file__).parents[2]
README = (ROOT / "README.md").read_text()
SCHEMA = json.loads((ROOT / "docs" / "schema" / "job.json").read_text())
VALIDATOR = Draft202012Validator(SCHEMA)


def _job_section() -> str:
    """The README's "The job" section, up to the next top-level heading."""
    start = README.index("### The job")
    return README[start : README.index("\n## ", start)]


def readme_json_jobs() -> list[dict[str, Any]]:
    """Every JSON job in a ```json block of the README's job section (one per line)."""
    blocks = re.findall(r"```json\n(.*?)```", _job_section(), flags=re.DOTALL)
    return [json.loads(line) for block in blocks for line in block.splitlines() if line.strip()]


def readme_python_jobs() -> list[dict[str, Any]]:
    """The dicts the README's Python examples hand to ``EmailJob.model_validate``."""
    jobs = []
    for block in re.findall(r"```python\n(.*?)```", README, flags=re.DOTALL):
        for node in ast.walk(ast.parse(block)):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "model_validate"
            ):
                jobs.append(ast.literal_eval(node.args[0]))
    return jobs


def demo_jobs() -> list[dict[str, Any]]:
    lines = (ROOT / "deploy" / "demo" / "jobs.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def schema_problems(job: Any) -> list[str]:
    return [error.message for error in VALIDATOR.iter_errors(job)]


VALID = {
    "readme json": readme_json_jobs,
    "readme python": readme_python_jobs,
    "demo jobs.jsonl": demo_jobs,
}

# Each breaks the shape of a job, so the schema and mailfleet both refuse it.
INVALID: dict[str, Any] = {
    "no from": {"to": ["ann@example.org"], "text": "Hi"},
    "unknown field": {"from": "a@example.org", "to": ["b@example.org"], "text": "x", "prio": 1},
    "unknown lane": {"from": "a@example.org", "to": ["b@example.org"], "text": "x", "lane": "vip"},
    "to is a number": {"from": "a@example.org", "to": 42, "text": "x"},
    "subject is a list": {"from": "a@example.org", "to": ["b@example.org"], "subject": ["x"]},
    "attachment without content": {
        "from": "a@example.org",
        "to": ["b@example.org"],
        "text": "x",
        "attachments": [{"filename": "a.txt"}],
    },
    "tag value is a number": {
        "from": "a@example.org",
        "to": ["b@example.org"],
        "text": "x",
        "tags": {"kind": 1},
    },
    "not an object": ["a@example.org"],
}

# What the parser takes beyond the contract, for Python callers: the schema (the contract for
# other publishers) leaves it out on purpose.
LENIENT = {
    "from_, Python's spelling of from": {
        "from_": "a@example.org",
        "to": ["b@example.org"],
        "text": "x",
    },
    "to as one string": {"from": "a@example.org", "to": "b@example.org", "text": "x"},
}


class TestJobSchema:
    def test_the_committed_schema_is_a_valid_2020_12_schema(self) -> None:
        Draft202012Validator.check_schema(SCHEMA)

    @pytest.mark.parametrize("source", sorted(VALID))
    def test_the_documented_jobs_are_valid(self, source: str) -> None:
        jobs = VALID[source]()
        assert jobs, f"found no example jobs in {source}"
        for job in jobs:
            assert [] == schema_problems(job), job
            parse_job(job)  # and mailfleet takes them too

    @pytest.mark.parametrize("case", sorted(INVALID))
    def test_a_malformed_job_is_refused(self, case: str) -> None:
        job = INVALID[case]
        assert schema_problems(job), f"the schema accepts {case}: {job}"
        with pytest.raises(InvalidJobError):
            parse_job(job)

    @pytest.mark.parametrize("case", sorted(LENIENT))
    def test_what_only_the_parser_takes_is_outside_the_contract(self, case: str) -> None:
        job = LENIENT[case]
        assert schema_problems(job)
        parse_job(job)
