"""DKIM: reading the keys at start-up (``worker/mime/dkim_keys.py``), the setting's shape
(``shared/dkim_config.py``) and signing (``worker/mime/dkim.py``), verified with
``dkim.verify`` against a stub DNS that serves the test's public keys."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import dkim
import pytest

from mailfleet.shared.dkim_config import DkimKeyFile
from mailfleet.shared.errors import ConfigError
from mailfleet.shared.job import parse_job
from mailfleet.shared.settings import load_settings
from mailfleet.worker.mime.build import build_message
from mailfleet.worker.mime.dkim import DkimSigner
from mailfleet.worker.mime.dkim_keys import Algorithm, load_keys
from mailfleet.worker.mime.dkim_rsa import OpenSslRsaDKIM
from tests.dkim_fixtures import (
    StubDns,
    ed25519_key_file,
    rsa_key_file,
    signatures,
    verify_each,
)

DOMAIN = "example.com"


def entry(selector: str, path: Path) -> DkimKeyFile:
    return DkimKeyFile(selector=selector, key_file=path)


def message(**changes: Any) -> bytes:
    data: dict[str, Any] = {
        "id": "job-1",
        "from": f"Shop <shop@{DOMAIN}>",
        "to": ["ann@example.org"],
        "subject": "Your order",
        "text": "Thank you.\n",
    }
    data.update(changes)
    return build_message(parse_job(data))


@pytest.fixture(scope="module")
def dns() -> StubDns:
    return StubDns()


@pytest.fixture(scope="module")
def rsa_file(tmp_path_factory: pytest.TempPathFactory, dns: StubDns) -> Path:
    return rsa_key_file(tmp_path_factory.mktemp("k") / "rsa.pem", dns, "rsa1", DOMAIN)


@pytest.fixture(scope="module")
def ed_file(tmp_path_factory: pytest.TempPathFactory, dns: StubDns) -> Path:
    return ed25519_key_file(tmp_path_factory.mktemp("k") / "ed.pem", dns, "ed1", DOMAIN)


class TestLoadKeys:
    """Every problem with a key stops start-up with one line naming the domain."""

    def test_rsa_and_ed25519_keys_are_recognised(self, rsa_file: Path, ed_file: Path) -> None:
        """A PEM RSA key and a PEM Ed25519 key load with their algorithms."""
        keys = load_keys({DOMAIN: [entry("rsa1", rsa_file), entry("ed1", ed_file)]})
        assert [Algorithm.RSA, Algorithm.ED25519] == [key.algorithm for key in keys[DOMAIN]]

    def test_dkimpy_seed_format(self, tmp_path: Path) -> None:
        """dkimpy's own Ed25519 format, the base64 seed, loads too."""
        path = ed25519_key_file(tmp_path / "ed.key", StubDns(), "ed1", DOMAIN, seed_only=True)
        assert Algorithm.ED25519 == load_keys({DOMAIN: [entry("ed1", path)]})[DOMAIN][0].algorithm

    def test_short_rsa_key_is_refused(self, tmp_path: Path) -> None:
        """An RSA key under 2048 bits is refused, naming the domain and its size."""
        path = rsa_key_file(tmp_path / "short.pem", StubDns(), "s", DOMAIN, bits=1024)
        with pytest.raises(ConfigError) as caught:
            load_keys({DOMAIN: [entry("s", path)]})
        assert f"MAILFLEET_DKIM_KEYS: {DOMAIN}: key file {path} is a 1024-bit RSA key" in str(
            caught.value
        )

    def test_unreadable_file(self, tmp_path: Path) -> None:
        """A missing file is named with the reason."""
        missing = tmp_path / "nope.pem"
        with pytest.raises(ConfigError, match=f"{DOMAIN}: key file {missing} cannot be read"):
            load_keys({DOMAIN: [entry("s", missing)]})

    @pytest.mark.parametrize(
        "content",
        [
            b"not a key at all",
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            b"-----BEGIN RSA PRIVATE KEY-----\nc2VjcmV0LWJ5dGVz\n-----END RSA PRIVATE KEY-----\n",
        ],
    )
    def test_malformed_key_is_refused_without_showing_it(
        self, tmp_path: Path, content: bytes
    ) -> None:
        """Garbage is refused in one line that names the domain and never quotes the file."""
        path = tmp_path / "bad.pem"
        path.write_bytes(content)
        with pytest.raises(ConfigError) as caught:
            load_keys({DOMAIN: [entry("s", path)]})
        text = str(caught.value)
        assert text.startswith(f"MAILFLEET_DKIM_KEYS: {DOMAIN}: key file {path} is not")
        assert "\n" not in text
        assert b"c2VjcmV0" not in text.encode()

    def test_dual_needs_two_algorithms(self, rsa_file: Path) -> None:
        """Two RSA keys for one domain are not dual signing."""
        with pytest.raises(ConfigError, match="needs one RSA and one Ed25519 key"):
            load_keys({DOMAIN: [entry("a", rsa_file), entry("b", rsa_file)]})

    def test_key_not_in_repr(self, rsa_file: Path) -> None:
        """A loaded key's repr shows its domain and selector, never the key."""
        key = load_keys({DOMAIN: [entry("rsa1", rsa_file)]})[DOMAIN][0]
        assert "PRIVATE" not in repr(key)
        assert "rsa1" in repr(key)


class TestSetting:
    """``MAILFLEET_DKIM_KEYS``: a JSON map, one entry or a list of two per domain."""

    def test_single_and_dual_entries(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """One object or a list of them; domains are lower-cased."""
        value = {
            "Example.COM": {"selector": "s1", "key_file": "/k/rsa.pem"},
            "other.org": [
                {"selector": "r", "key_file": "/k/r.pem"},
                {"selector": "e", "key_file": "/k/e.pem"},
            ],
        }
        monkeypatch.setenv("MAILFLEET_DKIM_KEYS", json.dumps(value))
        keys = load_settings().dkim_keys
        assert ["s1"] == [key.selector for key in keys["example.com"]]
        assert ["r", "e"] == [key.selector for key in keys["other.org"]]

    @pytest.mark.parametrize(
        ("value", "problem"),
        [
            ('{"example.com": {"selector": "s1"}}', "example.com: key_file: Field required"),
            ('{"example.com": []}', "example.com: give one key, or two for dual signing"),
            ('{"not a domain": {"selector": "s", "key_file": "/k"}}', "is not a domain name"),
            ('{"example.com": {"selector": "a b", "key_file": "/k"}}', "is not a DNS selector"),
            ('["example.com"]', "must be a JSON object"),
        ],
    )
    def test_bad_shapes(self, monkeypatch: pytest.MonkeyPatch, value: str, problem: str) -> None:
        """A malformed map is one configuration error naming the variable and the domain."""
        monkeypatch.setenv("MAILFLEET_DKIM_KEYS", value)
        with pytest.raises(ConfigError, match=r"^MAILFLEET_DKIM_KEYS: ") as caught:
            load_settings()
        assert problem in str(caught.value)


class TestSigning:
    """Signatures that a receiver verifies, over the headers it needs signed."""

    def test_single_rsa_signature_verifies(self, rsa_file: Path, dns: StubDns) -> None:
        """One rsa-sha256 signature, d= the From domain, that verifies."""
        signer = DkimSigner(load_keys({DOMAIN: [entry("rsa1", rsa_file)]}))
        signed = signer.sign(message(), DOMAIN)
        assert signed is not None
        assert [True] == verify_each(signed, dns)
        tags = signatures(signed)[0]
        assert (b"rsa-sha256", DOMAIN.encode(), b"rsa1") == (tags[b"a"], tags[b"d"], tags[b"s"])

    def test_dual_signatures_both_verify(self, rsa_file: Path, ed_file: Path, dns: StubDns) -> None:
        """RSA plus Ed25519: two signatures, each verifying on its own."""
        keys = load_keys({DOMAIN: [entry("rsa1", rsa_file), entry("ed1", ed_file)]})
        signed = DkimSigner(keys).sign(message(), DOMAIN)
        assert signed is not None
        assert [True, True] == verify_each(signed, dns)
        assert [b"rsa-sha256", b"ed25519-sha256"] == [tags[b"a"] for tags in signatures(signed)]

    def test_signed_headers(self, ed_file: Path, dns: StubDns) -> None:
        """h= lists From (twice), To, Subject, Date, Message-ID, MIME-Version, Content-Type
        and the List-Unsubscribe pair when present."""
        signer = DkimSigner(load_keys({DOMAIN: [entry("ed1", ed_file)]}))
        lines = b"List-Unsubscribe: <https://u.example/u/x>\r\n"
        lines += b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
        signed = signer.sign(lines + message(), DOMAIN)
        assert signed is not None
        signed_headers = signatures(signed)[0][b"h"].split(b":")
        expected = [b"from", b"from", b"to", b"subject", b"date", b"message-id"]
        expected += [b"mime-version", b"content-type"]
        expected += [b"list-unsubscribe", b"list-unsubscribe-post"]
        assert expected == signed_headers
        assert [True] == verify_each(signed, dns)

    def test_a_changed_body_fails(self, ed_file: Path, dns: StubDns) -> None:
        """The check is real: a body changed after signing no longer verifies."""
        signer = DkimSigner(load_keys({DOMAIN: [entry("ed1", ed_file)]}))
        signed = signer.sign(message(), DOMAIN)
        assert signed is not None
        assert [False] == verify_each(signed.replace(b"Thank you.", b"Thank you!"), dns)

    def test_parent_domain_key_signs_a_subdomain(self, ed_file: Path, dns: StubDns) -> None:
        """From news.example.com is signed with example.com's key (relaxed alignment)."""
        signer = DkimSigner(load_keys({DOMAIN: [entry("ed1", ed_file)]}))
        signed = signer.sign(message(**{"from": f"news@news.{DOMAIN}"}), f"news.{DOMAIN}")
        assert signed is not None
        assert DOMAIN.encode() == signatures(signed)[0][b"d"]
        assert [True] == verify_each(signed, dns)

    def test_domain_without_key_is_not_signed(self, ed_file: Path) -> None:
        """A sender domain with no key (nor a parent with one) gets None: sent unsigned."""
        signer = DkimSigner(load_keys({DOMAIN: [entry("ed1", ed_file)]}))
        assert signer.sign(message(**{"from": "a@other.org"}), "other.org") is None
        assert signer.sign(message(**{"from": "a@com"}), "com") is None


class TestOpenSslRsa:
    """The RSA step through OpenSSL gives dkimpy's own header, byte for byte."""

    def test_same_header_as_dkimpy(self, rsa_file: Path) -> None:
        """PKCS#1 v1.5 is deterministic: with the same t= both headers are equal."""
        key = load_keys({DOMAIN: [entry("rsa1", rsa_file)]})[DOMAIN][0]
        raw = message()
        arguments: dict[str, Any] = {
            "include_headers": [b"from", b"to", b"subject"],
            "canonicalize": (b"relaxed", b"relaxed"),
        }
        for _ in range(3):  # t= is the second: try again if one fell across a tick
            ours = OpenSslRsaDKIM(raw, key.rsa).sign(
                b"rsa1", DOMAIN.encode(), key.private, **arguments
            )
            theirs = dkim.DKIM(raw).sign(b"rsa1", DOMAIN.encode(), key.private, **arguments)
            if signatures(ours + raw)[0][b"t"] == signatures(theirs + raw)[0][b"t"]:
                break
        assert theirs == ours
