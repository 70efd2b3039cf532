"""The job's template fields: a template or a literal body, never both; capped variables;
a window and a campaign id that are checked like every other field."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from mailfleet.shared.errors import InvalidJobError
from mailfleet.shared.job import parse_job
from mailfleet.shared.schema import schema_of
from mailfleet.shared.template_ref import MAX_VARIABLES_BYTES

BASE = {"from": "a@example.com", "to": ["b@example.org"]}
NAMED = {**BASE, "template": {"name": "welcome", "version": 3}, "variables": {"name": "Ann"}}
INLINE = {**BASE, "template": {"inline": {"subject": "Hi {{ name }}", "html": "<p>x</p>"}}}
LITERAL = {**BASE, "subject": "Hi", "text": "Hello"}


def problems(data: dict[str, Any]) -> str:
    with pytest.raises(InvalidJobError) as caught:
        parse_job(data)
    return str(caught.value)


class TestTemplateFields:
    @pytest.mark.parametrize("data", [NAMED, INLINE, LITERAL])
    def test_valid_jobs_pass_the_model_and_the_schema(self, data: dict[str, Any]) -> None:
        parse_job(data)
        jsonschema.validate(data, schema_of("job"))

    @pytest.mark.parametrize(
        ("data", "problem"),
        [
            ({**NAMED, "subject": "literal"}, "gives no subject, text or html of its own"),
            ({**INLINE, "text": "literal"}, "gives no subject, text or html of its own"),
            ({**LITERAL, "variables": {"a": 1}}, "has variables but no template"),
            ({**BASE, "template": {}}, "either name (and version) or inline"),
            (
                {**BASE, "template": {"name": "x", "inline": INLINE["template"]["inline"]}},
                "not both",
            ),
            ({**BASE, "template": {"name": "bad name"}}, "must be 1-64 letters"),
            ({**BASE, "template": {"name": "x", "version": 0}}, "greater than or equal to 1"),
            ({**BASE, "template": {"inline": {"subject": "s"}}}, "needs a body"),
        ],
    )
    def test_bad_combinations_are_refused_with_a_reason(
        self, data: dict[str, Any], problem: str
    ) -> None:
        assert problem in problems(data)

    @pytest.mark.parametrize(
        "data",
        [{**NAMED, "subject": "literal"}, {**LITERAL, "variables": {"a": 1}}, BASE],
    )
    def test_the_schema_enforces_one_or_the_other(self, data: dict[str, Any]) -> None:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(data, schema_of("job"))

    def test_variables_are_capped(self) -> None:
        big = {**NAMED, "variables": {"blob": "x" * MAX_VARIABLES_BYTES}}
        assert f"more than the cap of {MAX_VARIABLES_BYTES}" in problems(big)

    def test_a_window_and_a_campaign_are_checked(self) -> None:
        assert "window.tz" in problems({**LITERAL, "window": {"tz": "Nowhere/Else"}})
        assert "campaign" in problems({**LITERAL, "campaign": "has spaces"})
        job = parse_job({**LITERAL, "window": {"days": "mon-fri"}, "campaign": "spring-1"})
        assert job.window is not None
        assert "mon-fri 00:00-24:00 UTC" == job.window.describe()

    def test_the_wire_form_round_trips(self) -> None:
        job = parse_job({**NAMED, "window": {"hours": "09:00-17:00"}, "campaign": "c1"})
        assert job == parse_job(job.to_wire())
