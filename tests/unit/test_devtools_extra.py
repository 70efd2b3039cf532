"""aiosmtpd comes with the devtools extra only: publishing never imports it, and the two
commands that need it say which extra to install when it is missing."""

from __future__ import annotations

import subprocess
import sys

import pytest

# Run in a fresh interpreter, where None in sys.modules makes `import aiosmtpd` fail.
_WITHOUT_AIOSMTPD = "import sys; sys.modules['aiosmtpd'] = None; "


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )


class TestDevtoolsExtra:
    def test_publishing_does_not_import_aiosmtpd(self) -> None:
        """The producer's API and its commands load without aiosmtpd."""
        result = _python(
            "import sys; import mailfleet.producer, mailfleet.producer.cli; "
            "from mailfleet.shared.cli import build_parser; build_parser(); "
            "print('aiosmtpd' in sys.modules)"
        )

        assert ("False\n", "") == (result.stdout, result.stderr)

    @pytest.mark.parametrize("command", ["sink", "demo"])
    def test_a_missing_aiosmtpd_is_one_line_naming_the_extra(self, command: str) -> None:
        """`mailfleet sink` and `mailfleet demo` exit 1 with one line saying what to install."""
        result = _python(
            f"{_WITHOUT_AIOSMTPD}from mailfleet.shared.cli import main; "
            f"sys.exit(main([{command!r}]))"
        )

        assert 1 == result.returncode
        assert [
            f"mailfleet {command}: needs aiosmtpd, from the devtools extra: "
            "pip install 'mailfleet[devtools]'"
        ] == result.stderr.splitlines()
