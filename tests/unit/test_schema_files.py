"""docs/schema/*.json are exactly what `mailfleet schema NAME` prints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mailfleet.shared.cli import build_parser
from mailfleet.shared.schema import SCHEMAS
from mailfleet.shared.settings import load_settings

SCHEMA_DIR = Path(__file__).parents[2] / "docs" / "schema"


def printed(name: str, capsys: pytest.CaptureFixture[str]) -> str:
    """What `mailfleet schema NAME` prints, run in-process through the real parser."""
    args = build_parser("schema").parse_args(["schema", name])
    assert 0 == args.handler(args, load_settings())
    return capsys.readouterr().out


class TestSchemaFiles:
    def test_every_contract_has_a_committed_copy(self) -> None:
        committed = sorted(path.stem for path in SCHEMA_DIR.glob("*.json"))
        assert sorted(SCHEMAS) == committed, (
            "docs/schema/ should hold one NAME.json per `mailfleet schema` contract; "
            "write a missing one with `mailfleet schema NAME > docs/schema/NAME.json`"
        )

    @pytest.mark.parametrize("name", sorted(SCHEMAS))
    def test_committed_copy_matches_the_command(
        self, name: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        committed = json.loads((SCHEMA_DIR / f"{name}.json").read_text())
        assert json.loads(printed(name, capsys)) == committed, (
            f"docs/schema/{name}.json is out of date with the model; regenerate it with "
            f"`mailfleet schema {name} > docs/schema/{name}.json` and commit it"
        )

    @pytest.mark.parametrize("name", sorted(SCHEMAS))
    def test_output_is_indented_json_with_one_trailing_newline(
        self, name: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        text = printed(name, capsys)
        assert text.endswith("}\n")
        assert text.startswith('{\n  "$schema": ')

    def test_an_unknown_contract_is_a_usage_error_naming_the_choices(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        with pytest.raises(SystemExit) as exit_:
            build_parser("schema").parse_args(["schema", "nonsense"])
        assert 2 == exit_.value.code
        error = capsys.readouterr().err
        assert "invalid choice: 'nonsense'" in error
        assert "'job'" in error
