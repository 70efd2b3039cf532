"""Settings from ``MAILFLEET_*`` environment variables."""

from __future__ import annotations

import os
from typing import Any

import pytest

from mailfleet.shared.durations import Rate
from mailfleet.shared.errors import ConfigError
from mailfleet.shared.job import JobLimits, Lane
from mailfleet.shared.limit_spec import Budget, Limit
from mailfleet.shared.names import Names
from mailfleet.shared.relays import Relay
from mailfleet.shared.settings import load_settings, redact_url

AMQP_SECRET = "amqp-pw-Zq81"
REDIS_SECRET = "redis-pw-Xk27"
RELAY_SECRET = "relay-pw-Wm55"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts from an environment without any MAILFLEET_ variable."""
    for name in list(os.environ):
        if name.upper().startswith("MAILFLEET_"):
            monkeypatch.delenv(name)


def config_error(monkeypatch: pytest.MonkeyPatch, **env: str) -> str:
    """The text of the ConfigError that loading settings with ``env`` raises."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    return str(caught.value)


class TestDefaults:
    """Settings with no variable set: a local development machine."""

    def test_defaults(self) -> None:
        """Every setting has the documented local default."""
        settings = load_settings()
        expected = {
            "amqp_url": "amqp://guest:guest@127.0.0.1:5672/%2F",
            "redis_url": "redis://127.0.0.1:6379/0",
            "namespace": "mailfleet",
            "smtp_relays": [Relay(host="127.0.0.1", port=1025)],
            "smtp_timeout": 10.0,
            "prefetch": 512,
            "concurrency": 8,
            "shutdown_grace": 25.0,
            "rate_limit": None,
            "rate_burst": None,
            "domain_limits": {},
            "lane_limits": {},
            "retry_delays": [5.0, 30.0, 120.0, 600.0, 3600.0],
            "max_attempts": 8,
            "max_age": 172800.0,
            "delivery_limit": 20,
            "sent_ttl": 604800.0,
            "max_recipients": 100,
            "max_job_bytes": 10 * 1024 * 1024,
            "metrics_port": 9108,
            "log_format": "console",
            "log_level": "INFO",
        }
        actual = {name: getattr(settings, name) for name in expected}
        actual["amqp_url"] = settings.amqp_url.get_secret_value()
        actual["redis_url"] = settings.redis_url.get_secret_value()
        assert expected == actual

    def test_names_from_namespace(self) -> None:
        """``names`` derives every name from the namespace."""
        assert Names("mailfleet") == load_settings().names

    def test_job_limits(self) -> None:
        """``job_limits`` carries the recipient and size caps to the job schema."""
        assert JobLimits(max_recipients=100, max_job_bytes=10 * 1024 * 1024) == (
            load_settings().job_limits
        )

    def test_overrides_win(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Keyword overrides to ``load_settings`` win over the environment."""
        monkeypatch.setenv("MAILFLEET_NAMESPACE", "from-env")
        assert "from-override" == load_settings(namespace="from-override").namespace

    def test_unrelated_variables_ignored(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Variables without the prefix do not count."""
        monkeypatch.setenv("NAMESPACE", "other")
        monkeypatch.setenv("PREFETCH", "not-a-number")
        assert ("mailfleet", 512) == (load_settings().namespace, load_settings().prefetch)


class TestVariables:
    """Every MAILFLEET_ variable is read and parsed."""

    @pytest.mark.parametrize(
        ("variable", "value", "attribute", "expected"),
        [
            ("MAILFLEET_NAMESPACE", "test-run_7", "namespace", "test-run_7"),
            ("MAILFLEET_SMTP_TIMEOUT", "30s", "smtp_timeout", 30.0),
            ("MAILFLEET_PREFETCH", "50", "prefetch", 50),
            ("MAILFLEET_CONCURRENCY", "16", "concurrency", 16),
            ("MAILFLEET_SHUTDOWN_GRACE", "1m", "shutdown_grace", 60.0),
            ("MAILFLEET_RATE_LIMIT", "200/s", "rate_limit", Limit(Rate(200, 1))),
            ("MAILFLEET_RATE_LIMIT", "5000/m", "rate_limit", Limit(Rate(5000, 60))),
            (
                "MAILFLEET_RATE_LIMIT",
                "200/s,500000/d",
                "rate_limit",
                Limit(Rate(200, 1), (Budget(500000, 86400),)),
            ),
            ("MAILFLEET_RATE_BURST", "50", "rate_burst", 50),
            ("MAILFLEET_MAX_ATTEMPTS", "3", "max_attempts", 3),
            ("MAILFLEET_MAX_AGE", "1d", "max_age", 86400.0),
            ("MAILFLEET_DELIVERY_LIMIT", "5", "delivery_limit", 5),
            ("MAILFLEET_SENT_TTL", "2d", "sent_ttl", 172800.0),
            ("MAILFLEET_MAX_RECIPIENTS", "10", "max_recipients", 10),
            ("MAILFLEET_MAX_JOB_BYTES", "4096", "max_job_bytes", 4096),
            ("MAILFLEET_METRICS_PORT", "0", "metrics_port", 0),
            ("MAILFLEET_LOG_FORMAT", "json", "log_format", "json"),
            ("MAILFLEET_RETRY_DELAYS", "5s,1m, 2h", "retry_delays", [5.0, 60.0, 7200.0]),
            ("MAILFLEET_RETRY_DELAYS", '["10s", "1m"]', "retry_delays", [10.0, 60.0]),
            ("MAILFLEET_RETRY_DELAYS", "[5, 60]", "retry_delays", [5.0, 60.0]),
        ],
    )
    def test_variable(
        self,
        monkeypatch: pytest.MonkeyPatch,
        variable: str,
        value: str,
        attribute: str,
        expected: Any,
    ) -> None:
        """A variable's value is parsed into its setting."""
        monkeypatch.setenv(variable, value)
        assert expected == getattr(load_settings(), attribute)

    @pytest.mark.parametrize(
        ("variable", "url"),
        [
            ("MAILFLEET_AMQP_URL", "amqps://user:pw@host:1/x"),
            ("MAILFLEET_REDIS_URL", "rediss://user:pw@host:1/0"),
        ],
    )
    def test_urls(self, monkeypatch: pytest.MonkeyPatch, variable: str, url: str) -> None:
        """Broker and Redis URLs are read as secrets."""
        monkeypatch.setenv(variable, url)
        secret = getattr(load_settings(), variable.removeprefix("MAILFLEET_").lower())
        assert url == secret.get_secret_value()

    @pytest.mark.parametrize(
        ("variable", "url", "problem"),
        [
            ("MAILFLEET_AMQP_URL", "http://user:pw@host/", "must start with amqp"),
            ("MAILFLEET_REDIS_URL", "tcp://host:6379", "must start with redis"),
            ("MAILFLEET_AMQP_URL", "amqp://guest:S3cret/PW@host:5672/", "percent-encode"),
            ("MAILFLEET_REDIS_URL", "redis://:S3cret/PW@host:6379/0", "percent-encode"),
        ],
    )
    def test_bad_urls_are_refused_without_the_password(
        self, monkeypatch: pytest.MonkeyPatch, variable: str, url: str, problem: str
    ) -> None:
        """A wrong scheme or an unparseable URL names the variable, never the password."""
        monkeypatch.setenv(variable, url)
        with pytest.raises(ConfigError) as raised:
            load_settings()
        assert variable in str(raised.value)
        assert problem in str(raised.value)
        assert "S3cret" not in str(raised.value)
        assert "pw" not in str(raised.value).replace("percent", "")

    @pytest.mark.parametrize(
        "value",
        [
            '["smtp://relay-a:25", "smtps://user:p%40ss@relay-b?weight=3"]',
            "smtp://relay-a:25, smtps://user:p%40ss@relay-b?weight=3",
            "smtp://relay-a:25,smtps://user:p%40ss@relay-b?weight=3,",
        ],
    )
    def test_smtp_relays_json_or_comma_list(
        self, monkeypatch: pytest.MonkeyPatch, value: str
    ) -> None:
        """SMTP_RELAYS is a JSON list or a comma-separated list of relay URLs."""
        monkeypatch.setenv("MAILFLEET_SMTP_RELAYS", value)
        relays = load_settings().smtp_relays
        assert [("relay-a", 25, False), ("relay-b", 465, True)] == [
            (relay.host, relay.port, relay.implicit_tls) for relay in relays
        ]
        assert relays[1].password is not None
        assert ("user", "p@ss", 3) == (
            relays[1].username,
            relays[1].password.get_secret_value(),
            relays[1].weight,
        )

    def test_smtp_relay_starttls(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A relay URL may ask for STARTTLS."""
        monkeypatch.setenv("MAILFLEET_SMTP_RELAYS", "smtp://relay:587?starttls=true")
        assert [Relay(host="relay", port=587, starttls=True)] == load_settings().smtp_relays

    def test_domain_limits_json(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """DOMAIN_LIMITS is a JSON map of domain to rate, domains lower-cased."""
        monkeypatch.setenv(
            "MAILFLEET_DOMAIN_LIMITS", '{"Gmail.COM": "10/s", "example.org": "600/h"}'
        )
        expected = {
            "gmail.com": Limit(Rate(10, 1)),
            "example.org": Limit(None, (Budget(600, 3600),)),
        }
        assert expected == load_settings().domain_limits

    def test_lane_limits_json(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """LANE_LIMITS is a JSON map of lane to rate."""
        monkeypatch.setenv("MAILFLEET_LANE_LIMITS", '{"bulk": "50/s"}')
        assert {Lane.BULK: Limit(Rate(50, 1))} == load_settings().lane_limits

    def test_lane_limits_nested(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A nested variable (``__``) sets one lane's limit."""
        monkeypatch.setenv("MAILFLEET_LANE_LIMITS__BULK", "50/s")
        assert {Lane.BULK: Limit(Rate(50, 1))} == load_settings().lane_limits

    @pytest.mark.parametrize(
        ("value", "expected"),
        [("debug", "DEBUG"), ("Info", "INFO"), ("WARNING", "WARNING"), ("error", "ERROR")],
    )
    def test_log_level_any_case(
        self, monkeypatch: pytest.MonkeyPatch, value: str, expected: str
    ) -> None:
        """LOG_LEVEL is read in any case and kept upper-case."""
        monkeypatch.setenv("MAILFLEET_LOG_LEVEL", value)
        assert expected == load_settings().log_level

    def test_variable_names_any_case(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Variable names are matched regardless of case."""
        monkeypatch.setenv("mailfleet_prefetch", "7")
        assert 7 == load_settings().prefetch


class TestBadValues:
    """A bad value stops start-up with one line naming the variable."""

    @pytest.mark.parametrize(
        ("variable", "value"),
        [
            ("MAILFLEET_NAMESPACE", "has space"),
            ("MAILFLEET_NAMESPACE", "-leading-dash"),
            ("MAILFLEET_NAMESPACE", "x" * 64),
            ("MAILFLEET_NAMESPACE", "ns\n"),
            ("MAILFLEET_SMTP_RELAYS", "http://relay:25"),
            ("MAILFLEET_SMTP_RELAYS", ""),
            ("MAILFLEET_SMTP_RELAYS", '["smtp://relay:25"'),
            ("MAILFLEET_SMTP_RELAYS", "smtp://relay:25?starttls=maybe"),
            ("MAILFLEET_SMTP_TIMEOUT", "soon"),
            ("MAILFLEET_PREFETCH", "many"),
            ("MAILFLEET_PREFETCH", "0"),
            ("MAILFLEET_CONCURRENCY", "1000"),
            ("MAILFLEET_RATE_LIMIT", "fast"),
            ("MAILFLEET_RATE_LIMIT", "0/s"),
            ("MAILFLEET_RATE_BURST", "0"),
            ("MAILFLEET_DOMAIN_LIMITS", '{"gmail.com": "10/x"}'),
            ("MAILFLEET_DOMAIN_LIMITS", "{not json"),
            ("MAILFLEET_LANE_LIMITS", '{"urgent": "10/s"}'),
            ("MAILFLEET_RETRY_DELAYS", "5s,later"),
            ("MAILFLEET_RETRY_DELAYS", "[]"),
            ("MAILFLEET_MAX_ATTEMPTS", "0"),
            ("MAILFLEET_DELIVERY_LIMIT", "1"),
            ("MAILFLEET_MAX_JOB_BYTES", "10"),
            ("MAILFLEET_METRICS_PORT", "70000"),
            ("MAILFLEET_LOG_FORMAT", "xml"),
            ("MAILFLEET_LOG_LEVEL", "verbose"),
        ],
    )
    def test_one_line_naming_variable(
        self, monkeypatch: pytest.MonkeyPatch, variable: str, value: str
    ) -> None:
        """The error is one line that starts with the variable's name."""
        message = config_error(monkeypatch, **{variable: value})
        assert (f"{variable}:", 1) == (message.split(" ")[0], len(message.splitlines()))

    def test_first_bad_variable_named(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """With one good and one bad variable, the bad one is named."""
        message = config_error(monkeypatch, MAILFLEET_PREFETCH="5", MAILFLEET_CONCURRENCY="x")
        assert message.startswith("MAILFLEET_CONCURRENCY: ")

    def test_is_a_config_error(self) -> None:
        """Overrides are validated the same way."""
        with pytest.raises(ConfigError):
            load_settings(prefetch=0)


class TestSecrets:
    """Passwords never show in ``repr``/``str`` of the settings or of an error."""

    @pytest.fixture
    def secret_env(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("MAILFLEET_AMQP_URL", f"amqp://mailer:{AMQP_SECRET}@rabbit:5672/%2F")
        monkeypatch.setenv("MAILFLEET_REDIS_URL", f"redis://:{REDIS_SECRET}@redis:6379/0")
        monkeypatch.setenv("MAILFLEET_SMTP_RELAYS", f"smtp://mailer:{RELAY_SECRET}@relay:587")

    @staticmethod
    def leaked(text: str) -> list[str]:
        return [secret for secret in (AMQP_SECRET, REDIS_SECRET, RELAY_SECRET) if secret in text]

    @pytest.mark.usefixtures("secret_env")
    def test_not_in_repr(self) -> None:
        """repr() and str() of the settings hide every password."""
        settings = load_settings()
        assert [] == self.leaked(repr(settings) + str(settings) + repr(settings.smtp_relays))

    @pytest.mark.usefixtures("secret_env")
    def test_still_readable(self) -> None:
        """The code that connects can still read the secrets."""
        settings = load_settings()
        relay_password = settings.smtp_relays[0].password
        assert relay_password is not None
        expected = [
            f"amqp://mailer:{AMQP_SECRET}@rabbit:5672/%2F",
            f"redis://:{REDIS_SECRET}@redis:6379/0",
            RELAY_SECRET,
        ]
        actual = [
            settings.amqp_url.get_secret_value(),
            settings.redis_url.get_secret_value(),
            relay_password.get_secret_value(),
        ]
        assert expected == actual

    @pytest.mark.usefixtures("secret_env")
    @pytest.mark.parametrize(
        ("variable", "value"),
        [
            ("MAILFLEET_PREFETCH", "x"),
            ("MAILFLEET_SMTP_RELAYS", f"ftp://mailer:{RELAY_SECRET}@relay:21"),
            ("MAILFLEET_SMTP_RELAYS", f"smtp://mailer:{RELAY_SECRET}@relay:99999"),
            ("MAILFLEET_SMTP_RELAYS", f"smtp://mailer:{RELAY_SECRET}@relay:port"),
            ("MAILFLEET_SMTP_RELAYS", f"smtp://mailer:{RELAY_SECRET}@relay?bogus=1"),
            ("MAILFLEET_SMTP_RELAYS", f"smtp://mailer:{RELAY_SECRET}@"),
            ("MAILFLEET_SMTP_RELAYS", f'["smtp://mailer:{RELAY_SECRET}@relay"'),
            ("MAILFLEET_SMTP_RELAYS", f'[{{"host": "relay", "password": "{RELAY_SECRET}"}}]'),
        ],
    )
    def test_not_in_error(self, monkeypatch: pytest.MonkeyPatch, variable: str, value: str) -> None:
        """The error about a bad value shows no password, nor does its cause chain."""
        monkeypatch.setenv(variable, value)
        with pytest.raises(ConfigError) as caught:
            load_settings()
        shown = [str(caught.value), repr(caught.value), str(caught.value.__cause__ or "")]
        assert [] == self.leaked(" ".join(shown))
        assert caught.value.__suppress_context__


class TestRedactUrl:
    @pytest.mark.parametrize(
        ("url", "shown"),
        [
            ("amqp://guest:guest@127.0.0.1:5672/%2F", "amqp://guest:***@127.0.0.1:5672/%2F"),
            ("amqp://user:p@ss@host:5672/vh", "amqp://user:***@host:5672/vh"),
            ("amqp://guest:S3cret/PW@host:5672/", "amqp://guest:***@host:5672/"),
            ("redis://:pw@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
            ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
            ("not a url S3cret", "***"),
        ],
    )
    def test_the_password_is_masked_whole(self, url: str, shown: str) -> None:
        """Passwords holding @ or / are masked entirely; unparseable input is masked whole."""
        assert shown == redact_url(url)


class TestPasswordThatMovesTheHost:
    def test_a_raw_slash_in_a_redis_password_is_refused(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """`redis://user:47/xy@host` would connect to host `user`: refused, password unshown."""
        monkeypatch.setenv("MAILFLEET_REDIS_URL", "redis://user:4711/xyz@127.0.0.1:6379/0")
        with pytest.raises(ConfigError) as raised:
            load_settings()
        assert "percent-encode" in str(raised.value)
        assert "4711" not in str(raised.value)
