"""The README documents every setting and every command the code has."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailfleet.shared.cli import build_parser
from mailfleet.shared.settings import Settings

README = (Path(__file__).parents[2] / "README.md").read_text()


def _commands() -> list[str]:
    subparsers = build_parser()._subparsers  # argparse keeps the subcommands here
    assert subparsers is not None
    return sorted(subparsers._group_actions[0].choices)  # type: ignore[attr-defined]


class TestReadme:
    @pytest.mark.parametrize("field", sorted(Settings.model_fields))
    def test_every_setting_is_documented(self, field: str) -> None:
        """Each MAILFLEET_* variable appears in the README."""
        assert f"MAILFLEET_{field.upper()}" in README

    @pytest.mark.parametrize("command", _commands())
    def test_every_command_is_documented(self, command: str) -> None:
        """Each `mailfleet <command>` appears in the README."""
        assert f"mailfleet {command}" in README
