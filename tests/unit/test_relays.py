"""SMTP relay URLs: ``smtp://[user:pass@]host:port[?starttls=true&weight=N]`` or ``smtps://``."""

from __future__ import annotations

import pickle

import pytest

from mailfleet.shared.relays import Relay


class TestRelayParse:
    """``Relay.parse``."""

    @pytest.mark.parametrize(
        ("url", "expected"),
        [
            ("smtp://relay", Relay("relay", 25)),
            ("smtps://relay", Relay("relay", 465, implicit_tls=True)),
            ("smtp://relay:2525", Relay("relay", 2525)),
            ("smtps://relay:4650", Relay("relay", 4650, implicit_tls=True)),
            ("SMTP://relay", Relay("relay", 25)),
            ("  smtp://relay:1025  ", Relay("relay", 1025)),
            ("smtp://127.0.0.1:1025", Relay("127.0.0.1", 1025)),
            ("smtp://[::1]:25", Relay("::1", 25)),
            ("smtp://relay:587?starttls=true", Relay("relay", 587, starttls=True)),
            ("smtp://relay:587?starttls=TRUE", Relay("relay", 587, starttls=True)),
            ("smtp://relay:587?starttls=yes", Relay("relay", 587, starttls=True)),
            ("smtp://relay:587?starttls=1", Relay("relay", 587, starttls=True)),
            ("smtp://relay:587?starttls=on", Relay("relay", 587, starttls=True)),
            ("smtp://relay?starttls=false", Relay("relay", 25, starttls=False)),
            ("smtp://relay?starttls=off", Relay("relay", 25, starttls=False)),
            ("smtp://relay?starttls=0", Relay("relay", 25, starttls=False)),
            ("smtp://relay?weight=3", Relay("relay", 25, weight=3)),
            ("smtp://relay?weight=3&starttls=true", Relay("relay", 25, starttls=True, weight=3)),
            ("smtp://mailer@relay", Relay("relay", 25, username="mailer")),
            ("smtp://us%40er@relay", Relay("relay", 25, username="us@er")),
        ],
    )
    def test_valid(self, url: str, expected: Relay) -> None:
        """A valid URL gives host, port (25 or 465 by default), TLS mode, user and weight."""
        assert expected == Relay.parse(url)

    @pytest.mark.parametrize(
        ("url", "password"),
        [
            ("smtp://mailer:s3cret@relay", "s3cret"),
            ("smtps://mailer:p%40ss%3Aw%2Ford@relay:465", "p@ss:w/ord"),
            ("smtp://:only-password@relay", "only-password"),
        ],
    )
    def test_password(self, url: str, password: str) -> None:
        """The password is URL-decoded and kept as a secret."""
        relay = Relay.parse(url)
        assert relay.password is not None
        assert password == relay.password.get_secret_value()

    def test_no_password(self) -> None:
        """A URL without a password gives none."""
        assert Relay.parse("smtp://mailer@relay").password is None

    @pytest.mark.parametrize(
        "url",
        [
            "http://relay:25",
            "relay:25",
            "lmtp://relay",
            "smtp://",
            "smtp://:25",
            "smtp://relay:port",
            "smtp://relay:99999",
            "smtp://relay:0",
            "smtp://relay?tls=true",
            "smtp://relay?starttls=maybe",
            "smtp://relay?weight=0",
            "smtp://relay?weight=-1",
            "smtp://relay?weight=1.5",
            "smtp://relay?weight=many",
            "smtps://relay?starttls=true",
            "smtp://relay?rate=fast",
        ],
    )
    def test_invalid(self, url: str) -> None:
        """A wrong scheme, missing host, bad port or unknown/bad option is refused."""
        with pytest.raises(ValueError, match=r"relay URL|relay option|starttls|weight|rate"):
            Relay.parse(url)


class TestRelaySecrets:
    """A relay's password stays out of everything printed."""

    def test_not_in_repr(self) -> None:
        """repr() and str() show the user but never the password."""
        relay = Relay.parse("smtp://mailer:Tr0ub4dor@relay:587")
        shown = repr(relay) + str(relay)
        assert (True, False) == ("mailer" in shown, "Tr0ub4dor" in shown)

    @pytest.mark.parametrize(
        ("url", "name"),
        [
            ("smtp://mailer:Tr0ub4dor@relay:587", "relay:587"),
            ("smtps://relay", "relay:465"),
            ("smtp://relay", "relay:25"),
        ],
    )
    def test_name(self, url: str, name: str) -> None:
        """``name`` is host:port, without credentials, for logs and metrics."""
        assert name == Relay.parse(url).name


class TestRelayTls:
    """STARTTLS is required for relays off loopback unless turned off explicitly."""

    @pytest.mark.parametrize(
        ("url", "expected"),
        [
            ("smtp://relay.example.com:587", True),
            ("smtp://10.0.0.5:25", True),
            ("smtp://127.0.0.1:1025", False),
            ("smtp://localhost:1025", False),
            ("smtp://[::1]:1025", False),
            ("smtp://relay.example.com:25?starttls=false", False),
            ("smtp://127.0.0.1:1025?starttls=true", True),
            ("smtps://relay.example.com", False),
        ],
    )
    def test_uses_starttls(self, url: str, expected: bool) -> None:
        """Auto STARTTLS: on for remote hosts, off for loopback and implicit TLS."""
        assert expected == Relay.parse(url).uses_starttls

    def test_rate_option(self) -> None:
        """``rate=100/s`` gives the relay a bucket of its own."""
        assert "100/s" == str(Relay.parse("smtp://relay?rate=100/s").rate)


class TestRelaySource:
    """``source=IP``: the local address a relay's connections bind to."""

    def test_source_names_the_relay(self) -> None:
        """Two sources to one host are two relays, told apart by name (metrics, rate keys)."""
        first = Relay.parse("smtp://relay:25?source=127.0.0.2")
        second = Relay.parse("smtp://relay:25?source=127.0.0.3&weight=2")
        assert ("127.0.0.2", "relay:25@127.0.0.2") == (first.source, first.name)
        assert ("relay:25@127.0.0.3", 2) == (second.name, second.weight)
        assert first != second

    def test_ipv6_source_is_normalised(self) -> None:
        """An IPv6 source is kept in its short form."""
        assert "::1" == Relay.parse("smtp://relay?source=0:0:0:0:0:0:0:1").source

    @pytest.mark.parametrize("value", ["relay.example.com", "127.0.0.256", ""])
    def test_source_must_be_an_address(self, value: str) -> None:
        """A source that is not an IP address is refused, naming the option."""
        with pytest.raises(ValueError, match="source must be an IP address"):
            Relay.parse(f"smtp://relay?source={value}")


def test_a_relay_s_cached_hash_stays_in_its_process() -> None:
    """The hash is cached (a relay keys every send's lookups) but not pickled: a group's
    child hashes strings with a seed of its own."""
    relay = Relay.parse("smtp://user:secret@relay.example.com:587?weight=3")
    assert hash(relay) == hash(Relay.parse("smtp://user:secret@relay.example.com:587?weight=3"))
    assert "relay.example.com:587" == relay.name
    state = relay.__getstate__()
    assert not {"_hash", "name"} & state.keys()
    copy = pickle.loads(pickle.dumps(relay))  # noqa: S301 (our own bytes)
    assert (relay, 3) == (copy, copy.weight)
    assert "breaker" == {relay: "breaker"}[copy]
