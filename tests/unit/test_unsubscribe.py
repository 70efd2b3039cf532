"""One-click unsubscribe: the link's token (``shared/unsubscribe_token.py``), the scope it
names (``shared/scope.py``) and the headers bulk mail carries (``worker/mime/unsubscribe.py``,
``worker/mime/finish.py``)."""

from __future__ import annotations

import email
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter
from pydantic import SecretStr

from mailfleet.shared.errors import ConfigError
from mailfleet.shared.job import EmailJob, parse_job
from mailfleet.shared.scope import Scope, split_field
from mailfleet.shared.settings import Settings
from mailfleet.shared.unsubscribe_token import UnsubscribeTokens
from mailfleet.worker.mime.build import build_message
from mailfleet.worker.mime.finish import Finisher, unsubscribe_headers
from mailfleet.worker.mime.unsubscribe import ListUnsubscribe, Outcome

TOKENS = UnsubscribeTokens(SecretStr("test-secret"))
BASE = "https://unsub.example.com/"


def make_job(**changes: Any) -> EmailJob:
    data: dict[str, Any] = {
        "id": "job-1",
        "from": "News <news@shop.example>",
        "to": ["Ann@Example.org"],
        "subject": "Offers",
        "text": "Hello",
        "lane": "bulk",
    }
    data.update(changes)
    return parse_job(data)


class TestToken:
    """A token names recipient, sender domain and list, and only the secret makes one."""

    def test_round_trip(self) -> None:
        """A token reads back as the lower-cased recipient and its scope."""
        token = TOKENS.make("Ann@Example.org", Scope("shop.example", "newsletter"))
        assert ("ann@example.org", Scope("shop.example", "newsletter")) == TOKENS.read(token)

    def test_url_safe(self) -> None:
        """Tokens are base64url: nothing to escape in a URL path."""
        token = TOKENS.make("a+b/c@example.org", Scope("shop.example", "news"))
        assert set(token) <= set(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."
        )

    @pytest.mark.parametrize(
        "forge",
        [
            lambda token: token[:-2] + ("AA" if not token.endswith("AA") else "BB"),
            lambda token: "x" + token,
            lambda token: token.replace(".", ""),
            lambda token: token + ".x",
            lambda token: "",
            lambda token: "!!!.???",
        ],
    )
    def test_forged_tokens_are_refused(self, forge: Any) -> None:
        """A changed payload or mac, or no token at all, reads as None."""
        token = TOKENS.make("ann@example.org", Scope("shop.example", "news"))
        assert TOKENS.read(forge(token)) is None

    def test_another_secret_refuses(self) -> None:
        """A token made under another secret is not genuine here."""
        other = UnsubscribeTokens(SecretStr("another")).make("ann@example.org", Scope("d.x", "l"))
        assert TOKENS.read(other) is None

    def test_secret_not_in_repr(self) -> None:
        """The secret never shows when the token maker is printed."""
        assert "test-secret" not in repr(TOKENS) + str(vars(TOKENS).keys())


class TestScope:
    """A job's scope: its sender domain and its list, or its lane."""

    def test_list_or_lane(self) -> None:
        """``list`` names the scope; without it the lane does."""
        assert Scope("shop.example", "weekly") == Scope.of(make_job(list="weekly"))
        assert Scope("shop.example", "bulk") == Scope.of(make_job())
        assert Scope("shop.example", "transactional") == Scope.of(make_job(lane="transactional"))

    def test_field_round_trip(self) -> None:
        """A scoped hash field splits back into address and scope."""
        scope = Scope("shop.example", "weekly")
        assert ("ann@example.org", scope) == split_field(scope.field("Ann@Example.org"))

    @pytest.mark.parametrize("text", ["shop.example", "/news", "shop.example/", ""])
    def test_bad_scope_text(self, text: str) -> None:
        """A scope is spelled domain/list."""
        with pytest.raises(ValueError, match="is not a scope"):
            Scope.parse(text)


class TestHeaders:
    """List-Unsubscribe on bulk mail, never on transactional mail unless asked for."""

    headers = ListUnsubscribe(BASE, TOKENS, mailto="unsubscribe@shop.example")

    def test_bulk_gets_both_headers(self) -> None:
        """A link to URL/u/TOKEN naming the recipient and list, a mailto, and the Post header."""
        job = make_job(list="weekly")
        outcome, lines = self.headers.headers(job, ["ann@example.org"])
        message = email.message_from_bytes(lines + build_message(job))
        assert Outcome.ADDED == outcome
        value = " ".join(str(message["List-Unsubscribe"]).split())
        link, mailto = value.split(", ")
        assert link.startswith("<https://unsub.example.com/u/")
        token = link.removeprefix("<https://unsub.example.com/u/").removesuffix(">")
        assert ("ann@example.org", Scope("shop.example", "weekly")) == TOKENS.read(token)
        assert "<mailto:unsubscribe@shop.example?subject=unsubscribe%20weekly>" == mailto
        assert "List-Unsubscribe=One-Click" == message["List-Unsubscribe-Post"]

    @pytest.mark.parametrize(
        ("changes", "outcome"),
        [
            ({"lane": "transactional"}, Outcome.NOT_ASKED),
            ({"lane": "transactional", "unsubscribe": True}, Outcome.ADDED),
            ({"unsubscribe": False}, Outcome.NOT_ASKED),
            ({"headers": {"List-Unsubscribe": "<https://own.example/x>"}}, Outcome.NOT_ASKED),
        ],
    )
    def test_who_gets_them(self, changes: dict[str, Any], outcome: Outcome) -> None:
        """Transactional only when the job asks; a job may turn it off or bring its own."""
        got, lines = self.headers.headers(make_job(**changes), ["ann@example.org"])
        assert (outcome, outcome is Outcome.ADDED) == (got, bool(lines))

    def test_several_recipients_go_without(self) -> None:
        """One link cannot name two people: no header, and the finisher counts it."""
        registry = CollectorRegistry()
        skipped = Counter("skipped", "", registry=registry)
        finisher = Finisher(self.headers, None, Counter("unsigned", "", registry=registry), skipped)
        job = make_job(to=["a@example.org", "b@example.org"])
        raw = finisher.finish(job, ["a@example.org", "b@example.org"], build_message(job))
        assert b"List-Unsubscribe" not in raw
        assert 1 == registry.get_sample_value("skipped_total")
        assert 1 == registry.get_sample_value("unsigned_total")


class TestSettings:
    """The unsubscribe settings are checked when the worker starts."""

    def test_url_needs_a_secret(self) -> None:
        """A URL without MAILFLEET_UNSUBSCRIBE_SECRET stops start-up, naming it."""
        with pytest.raises(ConfigError, match=r"^MAILFLEET_UNSUBSCRIBE_SECRET: must be set"):
            unsubscribe_headers(Settings(unsubscribe_url=BASE))

    def test_url_must_be_http(self) -> None:
        """Only http(s) URLs can take a one-click POST."""
        settings = Settings(unsubscribe_url="ftp://x", unsubscribe_secret=SecretStr("s"))
        with pytest.raises(ConfigError, match=r"^MAILFLEET_UNSUBSCRIBE_URL: 'ftp://x' is not"):
            unsubscribe_headers(settings)

    def test_off_without_url(self) -> None:
        """No URL: no headers at all."""
        assert unsubscribe_headers(Settings()) is None
