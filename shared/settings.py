"""All configuration, read once from ``MAILFLEET_*`` environment variables at the entry point.

Build it with :func:`load_settings` in ``main()`` and pass it down; nothing reads the
environment deep inside a function. A bad value raises :class:`ConfigError` with one line
that names the variable; secrets are ``SecretStr`` and never printed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BeforeValidator,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError

from mailfleet.shared.amqp_urls import failover_order, split_amqp_urls
from mailfleet.shared.dkim_config import DkimKeyFile, parse_dkim_keys
from mailfleet.shared.durations import Rate, parse_duration
from mailfleet.shared.errors import ConfigError
from mailfleet.shared.job import JobLimits, Lane
from mailfleet.shared.limit_spec import Limit
from mailfleet.shared.names import Names
from mailfleet.shared.redis_urls import CLUSTER_SCHEME, SENTINEL_SCHEME, parse_hosts_url
from mailfleet.shared.relays import Relay
from mailfleet.shared.send_window import SendWindow
from mailfleet.shared.verp import Verp
from mailfleet.shared.webhooks import WebhookEndpoint, parse_webhooks

ENV_PREFIX = "MAILFLEET_"
_URL_SCHEMES = {
    "amqp_url": ("amqp", "amqps"),
    "redis_url": ("redis", "rediss", "unix", "redis+sentinel", "redis+cluster"),
}
_AMQP_URL = f"{ENV_PREFIX}AMQP_URL"
_NAMESPACE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")


def _list_or_csv(value: Any) -> Any:
    """Accept a JSON list or a comma-separated string for list settings."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [item.strip() for item in text.split(",") if item.strip()]
    return value


def _parse_if_text(parser: Any) -> BeforeValidator:
    return BeforeValidator(lambda value: parser(value) if isinstance(value, str) else value)


def _relay_list(value: Any) -> Any:
    """A JSON list, or relay URLs separated by commas (a comma inside a URL's ``?rate=``
    list is not a separator: only one before ``smtp://`` or ``smtps://`` is)."""
    if isinstance(value, str) and not value.strip().startswith("["):
        return [
            item.strip() for item in re.split(r",(?=\s*(?:smtps?://|$))", value) if item.strip()
        ]
    return _list_or_csv(value)


def _limit(value: Any) -> Any:
    if isinstance(value, str):
        return Limit.parse(value)
    return Limit.of(value) if isinstance(value, Rate) else value


RateSetting = Annotated[Rate, _parse_if_text(Rate.parse)]
LimitSetting = Annotated[Limit, BeforeValidator(_limit)]  # "200/s,500000/d"
DurationSetting = Annotated[float, _parse_if_text(parse_duration)]
RelaySetting = Annotated[Relay, _parse_if_text(Relay.parse)]


class Settings(BaseSettings):
    """Every setting, with the defaults of a local development machine."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="ignore", frozen=True
    )

    amqp_url: SecretStr = SecretStr("amqp://guest:guest@127.0.0.1:5672/%2F")
    redis_url: SecretStr = SecretStr("redis://127.0.0.1:6379/0")
    namespace: str = "mailfleet"
    # Replicas of each lane, delay and dead queue when it is created (RabbitMQ takes at most
    # the cluster's size); an existing queue keeps the replicas it has.
    quorum_size: int = Field(default=3, ge=1, le=99)

    smtp_relays: Annotated[list[RelaySetting], NoDecode, BeforeValidator(_relay_list)] = Field(
        default_factory=lambda: [Relay.parse("smtp://127.0.0.1:1025")], min_length=1
    )
    smtp_timeout: DurationSetting = 10.0
    smtp_username: str | None = None  # for relays whose URL carries no credentials
    smtp_password: SecretStr | None = None
    smtp_ca_file: Path | None = None  # CA bundle to verify relay certificates against
    breaker_failures: int = Field(default=3, ge=1)  # failures in a row that open a relay
    breaker_cooldown: DurationSetting = 15.0  # how long an open relay is skipped

    # Room for each sender thread to take a batch of many (prefetch ÷ concurrency, at most
    # 64): one Redis read, one events confirm and one ack wake-up serve the whole batch. A
    # batch stays unacked until its events are confirmed. Measured in one session with 8
    # senders: batches of 8 (prefetch 256) drained 2 060-2 240/s, of 64 (prefetch 512)
    # 3 575-3 700/s (tests/benchmarks/bench_throughput.py).
    prefetch: int = Field(default=512, ge=1, le=10_000)
    concurrency: int = Field(default=8, ge=1, le=256)
    shutdown_grace: DurationSetting = 25.0
    # How long a publish may wait for its confirm, e.g. while a broker alarm blocks it.
    publish_timeout: DurationSetting = Field(default=30.0, gt=0)

    # Each a pace and/or budgets per hour and day (shared/limit_spec.py).
    rate_limit: LimitSetting | None = None
    rate_burst: int | None = Field(default=None, ge=1)
    domain_limits: dict[str, LimitSetting] = Field(default_factory=dict)
    lane_limits: dict[Lane, LimitSetting] = Field(default_factory=dict)

    retry_delays: Annotated[list[DurationSetting], NoDecode, BeforeValidator(_list_or_csv)] = Field(
        default_factory=lambda: [5.0, 30.0, 120.0, 600.0, 3600.0], min_length=1
    )
    max_attempts: int = Field(default=8, ge=1, le=1000)
    max_age: DurationSetting = 2 * 86400.0
    delivery_limit: int = Field(default=20, ge=2, le=1000)
    sent_ttl: DurationSetting = 7 * 86400.0
    # Per lane, a send whose outcome is unknown (the worker died during it): send it again
    # ("resend", the default) or dead-letter it as "ambiguous" ("hold"); worker/inflight.py.
    ambiguous: dict[Lane, Literal["resend", "hold"]] = Field(default_factory=dict)
    events: bool = True  # publish what became of each email to {ns}.events

    max_recipients: int = Field(default=100, ge=1)
    max_job_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)

    # Templates and campaigns (shared/templates/, shared/send_window.py).
    lane_windows: dict[Lane, SendWindow] = Field(default_factory=dict)  # a lane's default window
    max_rendered_bytes: int = Field(default=2 * 1024 * 1024, ge=1024)  # subject + text + html

    # Webhooks (``mailfleet webhooks``, see shared/webhooks.py): endpoints, each with a queue.
    webhooks: Annotated[list[WebhookEndpoint], NoDecode, BeforeValidator(parse_webhooks)] = Field(
        default_factory=list
    )
    webhook_timeout: DurationSetting = 10.0
    webhook_max_age: DurationSetting = 86400.0
    webhook_retry_delays: Annotated[
        list[DurationSetting], NoDecode, BeforeValidator(_list_or_csv)
    ] = Field(default_factory=lambda: [5.0, 30.0, 120.0, 600.0, 3600.0], min_length=1)
    webhook_concurrency: int = Field(default=4, ge=1, le=64)  # requests in flight per endpoint
    events_queue: bool = False  # also declare {ns}.events.all, bound to every event

    # Deliverability (README "Sending to Gmail and Yahoo"). DKIM: sender domain -> its keys,
    # read by the worker at start-up (shared/dkim_config.py).
    dkim_keys: Annotated[dict[str, list[DkimKeyFile]], BeforeValidator(parse_dkim_keys)] = Field(
        default_factory=dict
    )
    # One-click unsubscribe: the public base URL of `mailfleet unsubscribe-server`, an
    # optional mailto address, and the secret its links are signed with.
    unsubscribe_url: str | None = None
    unsubscribe_mailto: str | None = None
    unsubscribe_secret: SecretStr | None = None
    # Bounces and complaints (worker/bounces/): VERP return paths under this domain.
    bounce_domain: str | None = None
    bounce_localpart: str = Field(default="bounces", pattern=r"^[A-Za-z0-9._-]{1,30}$")
    bounce_secret: SecretStr | None = Field(default=None, validate_default=True)
    inbound_max_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)  # larger: ignored
    report_days: int = Field(default=35, ge=1, le=400)  # delivery report counters kept
    complaint_pause: float = Field(default=0.003, gt=0, le=1)  # 24 h rate that pauses bulk
    complaint_min_sends: int = Field(default=1000, ge=1)  # sends in 24 h before it can

    metrics_port: int = Field(default=9108, ge=0, le=65535)
    # ``mailfleet dashboard``: every request must carry it; binding beyond loopback needs it.
    dashboard_token: SecretStr | None = None
    log_format: Literal["json", "console"] = "console"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        if _NAMESPACE.fullmatch(value) is None:
            raise ValueError("must be 1-63 letters, digits, '-' or '_', starting alphanumeric")
        return value

    @field_validator("amqp_url", "redis_url")
    @classmethod
    def _url(cls, value: SecretStr, info: ValidationInfo) -> SecretStr:
        field = info.field_name or ""
        text = value.get_secret_value()
        urls = split_amqp_urls(text) if field == "amqp_url" else [text]
        for url in urls:
            _check_url(url, _URL_SCHEMES[field])
        if field == "redis_url" and text.startswith((f"{SENTINEL_SCHEME}:", f"{CLUSTER_SCHEME}:")):
            try:
                parse_hosts_url(text)
            except ValueError as exc:
                raise ValueError(f"{redact_url(text)}: {exc}") from None
        return value

    @field_validator("smtp_ca_file")
    @classmethod
    def _readable(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"{value} is not a readable file")
        return value

    @field_validator("domain_limits")
    @classmethod
    def _lower_domains(cls, value: dict[str, Limit]) -> dict[str, Limit]:
        return {domain.lower(): rate for domain, rate in value.items()}

    @field_validator("bounce_domain")
    @classmethod
    def _bounce_domain(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        domain = value.strip().lower()
        if not re.fullmatch(r"[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?", domain) or ".." in domain:
            raise ValueError(f"{domain!r} is not a domain name")
        return domain

    @field_validator("bounce_secret")
    @classmethod
    def _bounce_secret(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if info.data.get("bounce_domain") is None:
            return value
        if value is None:
            raise ValueError("must be set when MAILFLEET_BOUNCE_DOMAIN is (it signs the tokens)")
        if len(value.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters")
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @property
    def names(self) -> Names:
        return Names(self.namespace)

    @property
    def amqp_urls(self) -> list[str]:
        """The broker's URLs in this process's failover order (shared/amqp_urls.py)."""
        return failover_order(split_amqp_urls(self.amqp_url.get_secret_value()))

    @property
    def verp(self) -> Verp | None:
        """The VERP tokens of the bounce domain; None when no bounce domain is set."""
        if self.bounce_domain is None or self.bounce_secret is None:
            return None
        return Verp(self.bounce_domain, self.bounce_secret, self.bounce_localpart)

    @property
    def job_limits(self) -> JobLimits:
        return JobLimits(max_recipients=self.max_recipients, max_job_bytes=self.max_job_bytes)


def load_settings(**overrides: Any) -> Settings:
    """Read the environment (``overrides`` win); raise a one-line :class:`ConfigError`."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        field = str(error["loc"][0]) if error["loc"] else "settings"
        message = error["msg"].removeprefix("Value error, ")
        raise ConfigError(f"{ENV_PREFIX}{field.upper()}: {message}") from None
    except SettingsError as exc:
        match = re.search(r'field "(\w+)"', str(exc))
        variable = f"{ENV_PREFIX}{match.group(1).upper()}" if match else "MAILFLEET_*"
        raise ConfigError(f"{variable}: not valid JSON") from None


def _check_url(url: str, schemes: tuple[str, ...]) -> None:
    parts = urlsplit(url)
    if parts.scheme not in schemes:
        raise ValueError(f"{redact_url(url)} must start with {' or '.join(schemes)}://")
    try:
        if "," not in parts.netloc:  # several hosts (Sentinel): read in shared/redis_urls.py
            parts.port  # noqa: B018 (parsing the port is the check)
        if "@" in url.partition("://")[2] and "@" not in parts.netloc:
            raise ValueError  # a raw / ? or # in the password moved the host
    except ValueError:
        raise ValueError(invalid_url(url)) from None


def invalid_url(url: str, kind: str = "URL") -> str:
    """Why ``url`` (shown redacted) cannot be used: most often an unencoded password."""
    return (
        f"{redact_url(url)} is not a valid {kind} "
        "(percent-encode special characters in the password)"
    )


def bad_amqp_url(url: str) -> ConfigError:
    """The error for an AMQP URL that the client library (kombu or pika) cannot parse."""
    return ConfigError(f"{_AMQP_URL}: {invalid_url(url, 'AMQP URL')}")


def unreachable_broker(url: str) -> str:
    """``cannot reach RabbitMQ at amqp://guest:***@host/ (MAILFLEET_AMQP_URL)``."""
    return f"cannot reach RabbitMQ at {redact_url(url)} ({_AMQP_URL})"


def redact_url(url: str) -> str:
    """``amqp://user:secret@host/`` → ``amqp://user:***@host/``, for messages about connecting.

    Everything up to the last ``@`` counts as user info, so a password holding ``@`` or ``/``
    is masked whole (over-masking is the safe way to be wrong); a URL that does not even
    have a scheme is masked entirely."""
    scheme, separator, rest = url.partition("://")
    if not separator:
        return "***"
    userinfo, at, host_and_path = rest.rpartition("@")
    if not at:
        return url
    user = userinfo.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host_and_path}"
