"""Webhook endpoints as configured in ``MAILFLEET_WEBHOOKS``, and the names of their queues.

``MAILFLEET_WEBHOOKS`` is a JSON list of endpoints::

    [{"url": "https://hooks.example.com/mail", "events": ["delivered", "bounced"],
      "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}]

``events`` takes event kinds (``shared/events.py``) or ``"*"`` (the default); ``secret`` one
Standard Webhooks secret or a list of them (every one signs, for rotation). Each endpoint
has a stable ``name`` (given, or derived from the URL: host and a short hash) that names
its queue and labels its metrics. Secrets are ``SecretStr``: no repr, log or error shows
them, and the URL (which may hold credentials) is left out of the repr too.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from mailfleet.shared.durations import format_duration
from mailfleet.shared.events import EventKind
from mailfleet.shared.names import Names

ALL_EVENTS = "*"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_SECRET_PREFIX = "whsec_"  # noqa: S105 (the prefix of every secret, not one)
_SECRET_BYTES = (24, 64)  # what the Standard Webhooks spec asks of a secret
_KIND_VALUES = frozenset(kind.value for kind in EventKind)
_KINDS = ", ".join(kind.value for kind in EventKind)

# Headers of events on their way through the webhook queues (see the README's "Webhooks").
ATTEMPT = "x-mailfleet-webhook-attempt"  # the delivery attempt to this endpoint, from 1
FIRST_TRY = "x-mailfleet-webhook-first-try"  # when the age (MAILFLEET_WEBHOOK_MAX_AGE) starts
ENDPOINT = "x-mailfleet-endpoint"  # dead letters: the endpoint's name
ENDPOINT_URL = "x-mailfleet-endpoint-url"  # ... its URL, without user info or query
STATUS = "x-mailfleet-status"  # ... the last HTTP status (0: no response)
RESPONSE = "x-mailfleet-response"  # ... the start of the last response body


def _secret_is_valid(secret: str) -> bool:
    if not secret.startswith(_SECRET_PREFIX):
        return False
    encoded = secret.removeprefix(_SECRET_PREFIX)
    try:
        raw = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        return False
    return _SECRET_BYTES[0] <= len(raw) <= _SECRET_BYTES[1]


def safe_url(url: str) -> str:
    """``url`` without user info, query or fragment: fit for logs and dead-letter headers."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def derived_name(url: str) -> str:
    """``https://hooks.example.com/mail`` → ``hooks-example-com-3f2a9c``: stable per URL."""
    host = re.sub(r"[^a-z0-9]+", "-", (urlsplit(url).hostname or "endpoint").lower()).strip("-")
    digest = hashlib.sha256(url.encode()).hexdigest()[:6]
    return f"{host[:48] or 'endpoint'}-{digest}"


class WebhookEndpoint(BaseModel):
    """One endpoint: where events go, which kinds, and the secrets that sign them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str = Field(repr=False)
    events: tuple[str, ...] = (ALL_EVENTS,)
    secret: tuple[SecretStr, ...] = Field(min_length=1)
    name: str = ""

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 (parsing the port is the check)
        except ValueError:
            raise ValueError("is not a valid URL") from None
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        return value

    @field_validator("events", mode="before")
    @classmethod
    def _events_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("events")
    @classmethod
    def _events(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError(f"name at least one event kind ({_KINDS}) or '*'")
        for kind in value:
            if kind != ALL_EVENTS and kind not in _KIND_VALUES:
                raise ValueError(f"{kind!r} is not an event kind ({_KINDS}) or '*'")
        return (ALL_EVENTS,) if ALL_EVENTS in value else tuple(dict.fromkeys(value))

    @field_validator("secret", mode="before")
    @classmethod
    def _secret_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str | SecretStr) else value

    @field_validator("secret")
    @classmethod
    def _secrets(cls, value: tuple[SecretStr, ...]) -> tuple[SecretStr, ...]:
        for number, secret in enumerate(value, 1):
            if not _secret_is_valid(secret.get_secret_value()):
                which = f"entry {number} is" if len(value) > 1 else "is"
                raise ValueError(
                    f"{which} not a Standard Webhooks secret: 'whsec_' and the "
                    f"base64 of {_SECRET_BYTES[0]} to {_SECRET_BYTES[1]} random bytes"
                )
        return value

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if value and _NAME.fullmatch(value) is None:
            raise ValueError("must be 1-63 lower-case letters, digits, '-' or '_'")
        return value

    def model_post_init(self, context: Any) -> None:
        if not self.name:
            object.__setattr__(self, "name", derived_name(self.url))

    @property
    def secrets(self) -> list[SecretStr]:
        return list(self.secret)

    @property
    def safe_url(self) -> str:
        return safe_url(self.url)

    @property
    def binding_keys(self) -> list[str]:
        """Routing keys on ``{ns}.events`` (``<event>.<lane>``) that reach this endpoint."""
        return ["#"] if ALL_EVENTS in self.events else [f"{kind}.*" for kind in self.events]


def _problem(error: ValidationError) -> str:
    first = error.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(part) for part in first["loc"])
    message = first["msg"].removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


def parse_webhooks(value: Any) -> list[WebhookEndpoint]:
    """``MAILFLEET_WEBHOOKS`` (JSON text, or a list) as endpoints; a ``ValueError`` names the
    endpoint and the field at fault, never a secret."""
    if isinstance(value, str):
        if not value.strip():
            return []
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(
                f"not valid JSON ({exc.msg} at character {exc.pos}); expected a list of "
                '{"url": ..., "events": [...], "secret": "whsec_..."} objects'
            ) from None
    if not isinstance(value, list | tuple):
        raise ValueError('expected a JSON list of {"url", "events", "secret"} objects')
    endpoints: list[WebhookEndpoint] = []
    for number, item in enumerate(value, 1):
        if isinstance(item, WebhookEndpoint):
            endpoints.append(item)
            continue
        try:
            endpoints.append(WebhookEndpoint.model_validate(item))
        except ValidationError as exc:
            raise ValueError(f"endpoint {number}: {_problem(exc)}") from None
    names = [endpoint.name for endpoint in endpoints]
    for name in names:
        if names.count(name) > 1:
            raise ValueError(
                f'two endpoints are named {name!r}; give each a distinct URL or "name"'
            )
    return endpoints


@dataclass(frozen=True)
class WebhookNames:
    """Names of the webhook side of a namespace::

    {ns}.events (topic) ──► {ns}.webhooks.<endpoint> ──► POST
    {ns}.webhooks (direct): key endpoint.<name> → that queue; key dead → {ns}.events.dead
    {ns}.webhooks.delay (headers, tier) ──► {ns}.webhooks.delay.<tier> (TTL) ──► {ns}.webhooks
    """

    names: Names

    @property
    def exchange(self) -> str:
        return f"{self.names.namespace}.webhooks"

    def queue(self, endpoint: str) -> str:
        return f"{self.names.namespace}.webhooks.{endpoint}"

    @staticmethod
    def routing_key(endpoint: str) -> str:
        return f"endpoint.{endpoint}"

    dead_key = "dead"

    @property
    def delay_exchange(self) -> str:
        return f"{self.names.namespace}.webhooks.delay"

    def delay_queue(self, delay_seconds: float) -> str:
        return f"{self.names.namespace}.webhooks.delay.{format_duration(delay_seconds)}"

    def endpoint_of_queue(self, queue: str) -> str | None:
        """The endpoint whose queue is ``queue``, or None for any other queue."""
        prefix = f"{self.names.namespace}.webhooks."
        name = queue.removeprefix(prefix)
        if name == queue or name.startswith("delay.") or _NAME.fullmatch(name) is None:
            return None
        return name
