"""Syntactic address checks (RFC 5322 addr-spec, optional display name), no DNS."""

from __future__ import annotations

import pytest

from mailfleet.shared.addresses import bare_address, check_address, domain_of

LONGEST = f"{'a' * 64}@{'b' * 63}.{'c' * 63}.{'d' * 61}"  # 254 characters, the most allowed


class TestCheckAddress:
    """``check_address``: one valid address, returned stripped."""

    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("ann@example.org", "ann@example.org"),
            ("Ann@Example.ORG", "Ann@Example.ORG"),
            ("ann.lee+news@mail.example.org", "ann.lee+news@mail.example.org"),
            ("o'brien@example.org", "o'brien@example.org"),
            ("x_y-z=1!#$%&*/?^`{|}~@example.org", "x_y-z=1!#$%&*/?^`{|}~@example.org"),
            ("user@localhost", "user@localhost"),
            ("user@example.test", "user@example.test"),
            ("user@a-b.c-d.example", "user@a-b.c-d.example"),
            ('"john doe"@example.org', '"john doe"@example.org'),
            ("<ann@example.org>", "<ann@example.org>"),
            ("Ann <ann@example.org>", "Ann <ann@example.org>"),
            ('"Lee, Ann" <ann@example.org>', '"Lee, Ann" <ann@example.org>'),
            ("Zoë Müller <zoe@example.org>", "Zoë Müller <zoe@example.org>"),
            ("  ann@example.org  ", "ann@example.org"),
            ("  Ann <ann@example.org> ", "Ann <ann@example.org>"),
            pytest.param(LONGEST, LONGEST, id="254-chars"),
        ],
    )
    def test_valid(self, value: str, expected: str) -> None:
        """A bare address or one with a display name is accepted and stripped."""
        assert expected == check_address(value)

    @pytest.mark.parametrize(
        "value",
        [
            "",
            "   ",
            "ann",
            "ann@",
            "@example.org",
            "ann@@example.org",
            "ann@example..org",
            "ann..lee@example.org",
            ".ann@example.org",
            "ann.@example.org",
            "ann@-example.org",
            "ann@example-.org",
            "ann@exa mple.org",
            "ann lee@example.org",
            "ann@example.org.",
            "ann@[192.0.2.1]",
            "ann@éxample.org",
            "Ann <ann@>",
            "Ann <>",
            "ann@example.org, bob@example.org",
            "Ann <ann@example.org>, Bob <bob@example.org>",
            "Ann <ann@example.org> trailing",
            "ann@example.org\r\nBcc: victim@example.org",
            "ann@example.org\nBcc: victim@example.org",
            "Ann\r\nBcc: victim@example.org <ann@example.org>",
            "ann@example.org\0",
            "Bcc: victim@example.org",
            pytest.param(f"{LONGEST}d", id="255-chars"),
            pytest.param(f"ann@{'b' * 64}.org", id="64-char-label"),
        ],
    )
    def test_invalid(self, value: str) -> None:
        """Anything but exactly one syntactically valid address is refused."""
        with pytest.raises(ValueError, match="address"):
            check_address(value)


class TestBareAddress:
    """``bare_address``: the addr-spec for the SMTP envelope."""

    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("ann@example.org", "ann@example.org"),
            ("Ann <ann@example.org>", "ann@example.org"),
            ('"Lee, Ann" <ann@example.org>', "ann@example.org"),
            ("<ann@example.org>", "ann@example.org"),
            ("Zoë <Zoe@Example.org>", "Zoe@Example.org"),
        ],
    )
    def test_bare(self, value: str, expected: str) -> None:
        """The display name and angle brackets go; the address keeps its case."""
        assert expected == bare_address(value)


class TestDomainOf:
    """``domain_of``: the lower-cased domain, for per-domain limits and logs."""

    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("ann@example.org", "example.org"),
            ("Ann <ann@Mail.Example.ORG>", "mail.example.org"),
            ('"a@b" <ann@example.org>', "example.org"),
            ("user@localhost", "localhost"),
        ],
    )
    def test_domain(self, value: str, expected: str) -> None:
        """The part after the last @ of the addr-spec, lower-cased."""
        assert expected == domain_of(value)
