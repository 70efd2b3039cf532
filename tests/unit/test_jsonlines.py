"""Reading jobs from JSON lines (``mailfleet publish``), every line checked before publishing."""

from __future__ import annotations

import json
from typing import Any

from mailfleet.producer.jsonlines import read_jobs
from mailfleet.shared.job import DEFAULT_LIMITS, JobLimits


def line(**changes: Any) -> str:
    """One valid job as a JSON line, with ``changes`` applied."""
    data: dict[str, Any] = {"from": "shop@example.org", "to": "ann@example.org", "text": "Hi"}
    data.update(changes)
    return json.dumps(data)


class TestReadJobs:
    """``read_jobs``."""

    def test_valid_lines(self) -> None:
        """Every valid line gives a job, in order, with no problem."""
        jobs, problems = read_jobs([line(id="a"), line(id="b"), line(id="c")], DEFAULT_LIMITS)
        assert (["a", "b", "c"], []) == ([job.id for job in jobs], problems)

    def test_fields_parsed(self) -> None:
        """A line is parsed as a full job."""
        jobs, _ = read_jobs([line(id="a", lane="bulk", cc=["bob@example.org"])], DEFAULT_LIMITS)
        assert [("a", "bulk", ["ann@example.org"], ["bob@example.org"])] == [
            (job.id, job.lane.value, job.to, job.cc) for job in jobs
        ]

    def test_blank_lines_skipped(self) -> None:
        """Empty and whitespace-only lines are neither jobs nor problems."""
        jobs, problems = read_jobs(
            ["", line(id="a"), "   ", "\t\n", "\n", line(id="b")], DEFAULT_LIMITS
        )
        assert (["a", "b"], []) == ([job.id for job in jobs], problems)

    def test_lines_with_newlines(self) -> None:
        """Lines as read from a file, newline included, parse."""
        jobs, problems = read_jobs([line(id="a") + "\n", line(id="b") + "\r\n"], DEFAULT_LIMITS)
        assert (["a", "b"], []) == ([job.id for job in jobs], problems)

    def test_invalid_json(self) -> None:
        """A line that is not JSON is one problem naming the line."""
        jobs, problems = read_jobs([line(id="a"), '{"from": '], DEFAULT_LIMITS)
        assert (["a"], 1) == ([job.id for job in jobs], len(problems))
        assert problems[0].startswith("line 2: job: not valid JSON")

    def test_not_an_object(self) -> None:
        """A JSON line that is not an object is one problem naming the line."""
        lines = ["[1, 2]", '"text"', "42", "null", "true"]
        _, problems = read_jobs(lines, DEFAULT_LIMITS)
        expected = [f"line {n}: job: must be a JSON object" for n in range(1, 6)]
        assert expected == problems

    def test_every_problem_reported(self) -> None:
        """Each problem of each bad line is reported as ``line N: field: problem``."""
        lines = [
            line(id="ok-1"),
            line(**{"from": "nope", "lane": "urgent"}),
            line(id="ok-2"),
            line(to=["ann@example.org", "x"], bogus=1),
        ]
        jobs, problems = read_jobs(lines, DEFAULT_LIMITS)
        fields = [problem.split(": ")[:2] for problem in problems]
        expected = [["line 2", "from"], ["line 2", "lane"], ["line 4", "to.1"], ["line 4", "bogus"]]
        assert (["ok-1", "ok-2"], expected) == ([job.id for job in jobs], fields)

    def test_problem_text(self) -> None:
        """A problem line carries the schema's own message."""
        _, problems = read_jobs([line(lane="urgent")], DEFAULT_LIMITS)
        assert ["line 1: lane: Input should be 'transactional' or 'bulk'"] == problems

    def test_line_numbers_count_blank_lines(self) -> None:
        """Line numbers are those of the input, blank lines included."""
        _, problems = read_jobs(["", "", line(), "", "{"], DEFAULT_LIMITS)
        assert ["line 5"] == [problem.split(": ")[0] for problem in problems]

    def test_whole_job_problem(self) -> None:
        """A rule about the whole job is reported against ``job``."""
        _, problems = read_jobs([line(text=None)], DEFAULT_LIMITS)
        assert ["line 1: job: needs a body: text, html or both, or a template"] == problems

    def test_limits_applied(self) -> None:
        """The deployment's job limits apply to every line."""
        limits = JobLimits(max_recipients=1)
        jobs, problems = read_jobs([line(cc=["bob@example.org"]), line()], limits)
        assert (1, ["line 1: job"]) == (len(jobs), [p.rsplit(": ", 1)[0] for p in problems])

    def test_empty_input(self) -> None:
        """No lines give no jobs and no problems."""
        assert ([], []) == read_jobs([], DEFAULT_LIMITS)

    def test_bytes_that_are_not_utf8_are_a_problem_on_their_line(self) -> None:
        """Raw lines are decoded one by one; a bad one is reported, the others read."""
        jobs, problems = read_jobs([line().encode(), b'{"text": "\xff"}\n'], DEFAULT_LIMITS)
        assert (1, ["line 2: job: not UTF-8 text"]) == (len(jobs), problems)

    def test_json_nested_too_deeply_is_a_problem_not_a_crash(self) -> None:
        """A pathological line is refused with a message instead of a RecursionError."""
        _, problems = read_jobs(["[" * 100_000], DEFAULT_LIMITS)
        assert ["line 1: job: JSON nested too deeply"] == problems
