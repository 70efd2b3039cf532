"""The email job, wire contract ``mailfleet.email.v1``: one RabbitMQ message = one email.

Both sides validate with :class:`EmailJob`; the producer refuses bad input before anything
is published and the worker dead-letters a message that does not parse (reason ``invalid``).
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from mailfleet.shared.addresses import bare_address, check_address
from mailfleet.shared.errors import InvalidJobError
from mailfleet.shared.names import JOB_ID_HEADER
from mailfleet.shared.send_window import SendWindow
from mailfleet.shared.template_ref import TemplateRef, Variables
from mailfleet.shared.text import has_line_break

JOB_TYPE = "mailfleet.email.v1"
CONTENT_TYPE = "application/json"

# Headers the job sets itself (or the MIME structure owns); extra headers may not override them.
PROTECTED_HEADERS = frozenset(
    {
        "from",
        "to",
        "cc",
        "bcc",
        "subject",
        "reply-to",
        "sender",
        "date",
        "message-id",
        JOB_ID_HEADER.lower(),  # set by the worker; ledgers correlate by it
        "mime-version",
        "content-type",
        "content-transfer-encoding",
        "content-disposition",
    }
)
_FIELD_NAME = re.compile(r"^[\x21-\x39\x3b-\x7e]{1,76}$")  # RFC 5322: printable ASCII but ':'
_JOB_ID = re.compile(r"^[\x21-\x7e]{1,128}$")
_MIME_TYPE = re.compile(r"[A-Za-z0-9][\w!#$&^.+-]*/[A-Za-z0-9][\w!#$&^.+-]*", re.ASCII)
_TAG_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")
_LIST_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_CAMPAIGN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_MAX_MAP_ENTRIES = 32
_MAX_MAP_VALUE = 256


class Lane(StrEnum):
    """Priority lane; transactional mail is served before bulk."""

    TRANSACTIONAL = "transactional"
    BULK = "bulk"


@dataclass(frozen=True)
class JobLimits:
    """Caps a deployment may tune (``MAILFLEET_MAX_RECIPIENTS``, ``MAILFLEET_MAX_JOB_BYTES``)."""

    max_recipients: int = 100
    max_job_bytes: int = 10 * 1024 * 1024


DEFAULT_LIMITS = JobLimits()


def _no_line_breaks(value: str) -> str:
    if has_line_break(value):
        raise ValueError("must not contain CR, LF, other line breaks or NUL")
    return value


def _one_or_many(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


def _small_map(value: dict[str, str]) -> dict[str, str]:
    if len(value) > _MAX_MAP_ENTRIES:
        raise ValueError(f"at most {_MAX_MAP_ENTRIES} entries")
    for key, item in value.items():
        if _TAG_KEY.fullmatch(key) is None:
            raise ValueError(f"key {key!r} must be a short identifier ([A-Za-z0-9_.-])")
        if len(item) > _MAX_MAP_VALUE or has_line_break(item):
            raise ValueError(f"value of {key!r} must be one line of at most {_MAX_MAP_VALUE} chars")
    return value


Address = Annotated[str, AfterValidator(check_address)]
AddressList = Annotated[list[Address], BeforeValidator(_one_or_many)]
OneLine = Annotated[str, AfterValidator(_no_line_breaks)]
SmallMap = Annotated[dict[str, str], AfterValidator(_small_map)]


class Attachment(BaseModel):
    """A file carried in the job, base64-encoded."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    filename: Annotated[OneLine, Field(min_length=1, max_length=255)]
    content_type: str = "application/octet-stream"
    content_base64: str

    @field_validator("content_type")
    @classmethod
    def _mime_type(cls, value: str) -> str:
        if _MIME_TYPE.fullmatch(value) is None:
            raise ValueError(f"{value!r} is not a MIME type like text/plain")
        return value

    @field_validator("content_base64")
    @classmethod
    def _base64(cls, value: str) -> str:
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError("is not valid base64") from exc
        return value

    def content(self) -> bytes:
        return base64.b64decode(self.content_base64)


# The schema's form of the rule that a job has either a template or a literal body.
_BODY_OR_TEMPLATE: dict[str, Any] = {
    "oneOf": [
        {
            "required": ["template"],
            "not": {"anyOf": [{"required": [key]} for key in ("subject", "text", "html")]},
        },
        {
            "anyOf": [{"required": ["text"]}, {"required": ["html"]}],
            "not": {"anyOf": [{"required": ["template"]}, {"required": ["variables"]}]},
        },
    ]
}


def check_campaign_id(value: str) -> str:
    if _CAMPAIGN_ID.fullmatch(value) is None:
        raise ValueError("must be 1-64 letters, digits, '_', '.' or '-', starting alphanumeric")
    return value


class EmailJob(BaseModel):
    """One email to send. ``from`` is spelled ``from_`` in Python, ``from`` on the wire."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, json_schema_extra=_BODY_OR_TEMPLATE
    )

    id: str = Field(default_factory=lambda: str(uuid.uuid4()))
    from_: Address = Field(alias="from")
    to: AddressList = Field(default_factory=list)
    cc: AddressList = Field(default_factory=list)
    bcc: AddressList = Field(default_factory=list)
    reply_to: Address | None = None
    subject: OneLine = ""
    text: str | None = None
    html: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    attachments: list[Attachment] = Field(default_factory=list)
    lane: Lane = Lane.TRANSACTIONAL
    not_before: datetime | None = None
    tags: SmallMap = Field(default_factory=dict)
    metadata: SmallMap = Field(default_factory=dict)
    # The mailing list of the job: the scope of its one-click unsubscribe (the lane when
    # absent). ``unsubscribe`` asks for List-Unsubscribe (bulk: on unless false).
    list_: str | None = Field(default=None, alias="list")
    unsubscribe: bool | None = None
    # Personalised mail (shared/template_ref.py): rendered by the worker, instead of the
    # literal subject, text and html.
    template: TemplateRef | None = None
    variables: Variables | None = None
    window: SendWindow | None = None  # when it may go out (shared/send_window.py)
    campaign: Annotated[str, AfterValidator(check_campaign_id)] | None = None

    @field_validator("id")
    @classmethod
    def _job_id(cls, value: str) -> str:
        if _JOB_ID.fullmatch(value) is None:
            raise ValueError("must be 1-128 printable ASCII characters without spaces")
        return value

    @field_validator("list_")
    @classmethod
    def _list_name(cls, value: str | None) -> str | None:
        if value is not None and _LIST_NAME.fullmatch(value) is None:
            raise ValueError("must be 1-64 letters, digits, '.', '_' or '-'")
        return value

    @field_validator("headers")
    @classmethod
    def _extra_headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, item in value.items():
            if _FIELD_NAME.fullmatch(name) is None:
                raise ValueError(f"{name!r} is not an RFC 5322 header field name")
            if name.lower() in PROTECTED_HEADERS:
                raise ValueError(f"{name!r} may not be set as an extra header")
            _no_line_breaks(item)
        return value

    @field_validator("not_before")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("must carry a time zone (e.g. 2026-01-01T09:00:00Z)")
        return None if value is None else value.astimezone(UTC)

    @model_validator(mode="after")
    def _whole_job(self, info: ValidationInfo) -> Self:
        limits = info.context if isinstance(info.context, JobLimits) else DEFAULT_LIMITS
        count = len(self.to) + len(self.cc) + len(self.bcc)
        if count == 0:
            raise ValueError("needs at least one recipient in to, cc or bcc")
        if count > limits.max_recipients:
            raise ValueError(
                f"has {count} recipients, more than the cap of {limits.max_recipients}"
            )
        if self.template is not None:
            if self.subject or self.text is not None or self.html is not None:
                raise ValueError("has a template: it gives no subject, text or html of its own")
        elif self.variables:
            raise ValueError("has variables but no template to render them with")
        elif self.text is None and self.html is None:
            raise ValueError("needs a body: text, html or both, or a template")
        size = self.approximate_size()
        if size > limits.max_job_bytes:
            raise ValueError(f"is {size} bytes, more than the cap of {limits.max_job_bytes}")
        return self

    def approximate_size(self) -> int:
        """Bytes the big parts take on the wire; cheap enough to check on every message."""
        parts = [self.text or "", self.html or "", self.subject]
        parts += [a.content_base64 for a in self.attachments]
        parts += list(self.headers.values())
        return sum(len(part.encode()) for part in parts)

    def recipients(self) -> list[str]:
        """Envelope recipients (bare addresses), de-duplicated, in to, cc, bcc order."""
        seen: dict[str, None] = {}
        for address in (*self.to, *self.cc, *self.bcc):
            seen.setdefault(bare_address(address), None)
        return list(seen)

    def to_wire(self) -> bytes:
        return self.model_dump_json(by_alias=True, exclude_none=True).encode()


def problems_of(exc: ValidationError) -> list[tuple[str, str]]:
    """``(field, problem)`` pairs from a pydantic error, fields named as on the wire."""
    problems = []
    for error in exc.errors(include_url=False):
        field = ".".join(str(part) for part in error["loc"]) or "job"
        message = error["msg"].removeprefix("Value error, ")
        problems.append((field, message))
    return problems


def parse_message(body: bytes, kind: object, limits: JobLimits = DEFAULT_LIMITS) -> EmailJob:
    """The job a message carries, given its AMQP ``type`` property ``kind`` (None counts as
    v1); :class:`InvalidJobError` for another type, or a body that is not a valid job."""
    if kind is not None and kind != JOB_TYPE:
        raise InvalidJobError([("type", f"unknown message type {kind!r}, expected {JOB_TYPE}")])
    return parse_job(body, limits)


def parse_job(data: bytes | str | dict[str, Any], limits: JobLimits = DEFAULT_LIMITS) -> EmailJob:
    """Validate one job from JSON bytes or a dict; raise :class:`InvalidJobError` naming fields."""
    try:
        if isinstance(data, dict):
            return EmailJob.model_validate(data, context=limits)
        return EmailJob.model_validate_json(data, context=limits)
    except ValidationError as exc:
        raise InvalidJobError(problems_of(exc)) from exc
