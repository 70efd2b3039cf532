"""VERP tokens: short enough for SMTP, stable, and refused when forged or altered."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from mailfleet.shared.verp import TOKEN_LENGTH, ForgedToken, Verp, ref_digest

VERP = Verp("bounces.example.net", SecretStr("a-secret-of-enough-length"))


class TestTokens:
    def test_a_token_opens_to_the_digest_of_its_job_and_recipient(self) -> None:
        """The same job and recipient give the same token; it opens to their digest."""
        token = VERP.token("job-1", "Ann@Example.org")
        assert token == VERP.token("job-1", "ann@example.org")  # recipients fold their case
        assert ref_digest("job-1", "ann@example.org") == VERP.open(token)
        assert TOKEN_LENGTH == len(token)

    def test_the_return_path_fits_the_local_part_limit_for_the_longest_job_id(self) -> None:
        """A 128-character job id still gives a local part under SMTP's 64 characters."""
        path = VERP.return_path(VERP.token("x" * 128, "someone@example.org"))
        local, _, domain = path.partition("@")
        assert len(local) <= 64
        assert "bounces.example.net" == domain
        assert local.startswith("bounces+")

    def test_an_mta_that_folds_the_case_does_not_break_a_token(self) -> None:
        token = VERP.token("job-1", "ann@example.org")
        assert VERP.open(token) == VERP.open(token.upper())

    @pytest.mark.parametrize("position", [0, 5, 15, 25])
    def test_an_altered_character_is_refused(self, position: int) -> None:
        token = VERP.token("job-1", "ann@example.org")
        swapped = "a" if token[position] != "a" else "b"
        altered = token[:position] + swapped + token[position + 1 :]
        with pytest.raises(ForgedToken):
            VERP.open(altered)

    def test_another_secret_does_not_open_a_token(self) -> None:
        other = Verp("bounces.example.net", SecretStr("another-secret-entirely"))
        with pytest.raises(ForgedToken, match="MAC"):
            other.open(VERP.token("job-1", "ann@example.org"))

    @pytest.mark.parametrize("token", ["", "short", "!" * TOKEN_LENGTH, "a" * (TOKEN_LENGTH + 1)])
    def test_malformed_tokens_are_refused(self, token: str) -> None:
        with pytest.raises(ForgedToken):
            VERP.open(token)

    def test_the_secret_is_not_in_the_repr(self) -> None:
        assert "a-secret-of-enough-length" not in repr(VERP)
