"""A campaign's recipient list: CSV or JSON lines read a row at a time, and the check pass
that names each bad row and folds duplicates."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from mailfleet.producer.campaigns.check import check_rows
from mailfleet.producer.campaigns.jobs import (
    Campaign,
    digest,
    display_address,
    job_for,
    job_wire,
)
from mailfleet.producer.campaigns.rows import BadRow, Row, read_rows
from mailfleet.shared.job import DEFAULT_LIMITS, parse_job
from mailfleet.shared.send_window import SendWindow
from mailfleet.shared.template_ref import TemplateRef, TemplateSource
from mailfleet.shared.templates.render import Renderer
from mailfleet.shared.templates.store import read_directory

CAMPAIGN = Campaign("spring", TemplateRef(name="welcome", version=2), "shop@example.com")
SOURCE = TemplateSource(subject="Hi {{ name }}", text="Code {{ code }}")


def _check(path: Path) -> tuple[list[str], set[int], list[str]]:
    renderer = Renderer()
    warnings: list[str] = []
    result = check_rows(
        read_rows(path),
        CAMPAIGN,
        template=renderer.compile("welcome v2", SOURCE),
        renderer=renderer,
        limits=DEFAULT_LIMITS,
        warn=warnings.append,
    )
    return result.problems, result.duplicates, warnings


class TestReadRows:
    def test_csv_columns_become_variables(self, tmp_path: Path) -> None:
        """Rows are numbered as a spreadsheet shows them; email and name are variables too."""
        path = tmp_path / "list.csv"
        path.write_text("email,name,code\nann@example.org,Ann,7\n\nbob@example.org,,8\n")

        rows = list(read_rows(path))

        assert [
            Row(
                2,
                "ann@example.org",
                "Ann",
                {"name": "Ann", "code": "7", "email": "ann@example.org"},
            ),
            Row(4, "bob@example.org", None, {"code": "8", "email": "bob@example.org"}),
        ] == rows

    def test_json_lines_keep_their_types_and_accept_to(self, tmp_path: Path) -> None:
        path = tmp_path / "list.jsonl"
        path.write_text('{"to": "ann@example.org", "items": [1, 2]}\n\n[1]\n{bad\n')

        rows = list(read_rows(path))

        assert (
            Row(1, "ann@example.org", None, {"items": [1, 2], "email": "ann@example.org"})
            == rows[0]
        )
        assert BadRow(3, [("row", "must be a JSON object")]) == rows[1]
        assert isinstance(rows[2], BadRow)
        assert 4 == rows[2].number

    def test_a_row_without_an_address_or_with_both_is_bad(self, tmp_path: Path) -> None:
        path = tmp_path / "list.jsonl"
        path.write_text('{"name": "x"}\n{"email": "a@example.org", "to": "b@example.org"}\n')

        assert [
            BadRow(1, [("email", "missing (give email or to)")]),
            BadRow(2, [("email", "both email and to given")]),
        ] == list(read_rows(path))


class TestCheck:
    def test_every_bad_row_is_named_and_duplicates_are_folded(self, tmp_path: Path) -> None:
        path = tmp_path / "list.csv"
        path.write_text(
            "email,name,code\n"
            "ann@example.org,Ann,1\n"
            "not-an-address,Bob,2\n"
            "cy@example.org,Cy\n"
            "ANN@example.org,Ann again,3\n"
            'dee@example.org,"Dee\nBreak",4\n'
        )

        problems, duplicates, warnings = _check(path)

        assert "row 3: email: 'not-an-address' is not one valid email address" == problems[0]
        assert "row 4: row: has 2 cells, the header 3 columns" == problems[1]
        assert "row 6: name: must be one line (no CR, LF or NUL)" == problems[2]
        assert 3 == len(problems)
        assert {5} == duplicates
        assert [
            "row 5: email: ANN@example.org is a duplicate of an earlier row; folded"
        ] == warnings

    def test_a_missing_variable_is_found_by_rendering(self, tmp_path: Path) -> None:
        path = tmp_path / "list.csv"
        path.write_text("email,name\nann@example.org,Ann\n")

        problems, _, _ = _check(path)

        assert ["row 2: variables: text: missing variable: 'code' is undefined"] == problems


class TestJobs:
    def test_the_id_is_the_campaign_and_the_address_digest(self) -> None:
        """Case does not matter: ANN@ and ann@ are one recipient, one job id."""
        row = Row(2, "Ann@Example.org", "Ann Lee", {"code": "1"})
        job = job_for(CAMPAIGN, row, DEFAULT_LIMITS)

        assert f"spring:{digest('ann@example.org')}" == job.id
        assert ["Ann Lee <Ann@Example.org>"] == job.to
        assert "spring" == job.campaign
        assert job.template == CAMPAIGN.template

    def test_the_unvalidated_wire_form_is_the_validated_job(self) -> None:
        """job_wire skips validation for speed: it must say exactly what job_for checks."""
        window = SendWindow(days="mon-fri", hours="09:00-17:00", tz="Europe/Berlin")
        campaign = Campaign(
            "spring",
            TemplateRef(name="welcome", version=2),
            "Shop <shop@example.com>",
            window=window,
            not_before=datetime(2026, 12, 24, 8, 0, tzinfo=UTC),
        )
        row = Row(2, "ann@example.org", 'Lee, "Ann"', {"items": [1, {"a": "é"}], "email": "x"})

        assert job_for(campaign, row, DEFAULT_LIMITS) == parse_job(job_wire(campaign, row))

    def test_a_name_with_specials_is_quoted(self) -> None:
        assert '"Lee, Ann \\"A\\"" <a@example.org>' == display_address(
            'Lee, Ann "A"', "a@example.org"
        )


class TestDemoCampaign:
    def test_the_example_under_deploy_demo_checks_clean(self) -> None:
        """deploy/demo/campaign: the template reads, every row renders, one duplicate folds."""
        demo = Path(__file__).parents[2] / "deploy" / "demo" / "campaign"
        source = read_directory(demo / "welcome")
        renderer = Renderer()
        warnings: list[str] = []

        result = check_rows(
            read_rows(demo / "recipients.csv"),
            CAMPAIGN,
            template=renderer.compile("welcome", source),
            renderer=renderer,
            limits=DEFAULT_LIMITS,
            warn=warnings.append,
        )
        rendered = renderer.render(
            renderer.compile("welcome", source),
            json.loads((demo / "variables.json").read_text()),
        )

        assert ([], {6}) == (result.problems, result.duplicates)
        assert 1 == len(warnings)
        assert "Welcome to Mailfleet Shop, Ann Lee" == rendered.subject
