"""What a templated job names: a stored template by name and version, or the template inline,
and the variables it is rendered with. Part of the job's wire contract (``shared/job.py``)."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

MAX_VARIABLES_BYTES = 64 * 1024  # the JSON text of a job's variables
MAX_TEMPLATE_PART_BYTES = 512 * 1024  # one part (subject, text or html) of a template's source
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
TEMPLATE_NAME_RULE = "1-64 letters, digits, '_', '.' or '-', starting alphanumeric"


def check_template_name(value: str) -> str:
    if _NAME.fullmatch(value) is None:
        raise ValueError(f"{value!r} must be {TEMPLATE_NAME_RULE}")
    return value


def _small_part(value: str | None) -> str | None:
    if value is not None and len(value.encode()) > MAX_TEMPLATE_PART_BYTES:
        raise ValueError(f"is more than {MAX_TEMPLATE_PART_BYTES} bytes")
    return value


Part = Annotated[str | None, AfterValidator(_small_part)]


class TemplateSource(BaseModel):
    """A template's text: a subject and at least one of text and html (Jinja2 syntax)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    subject: Annotated[str, AfterValidator(_small_part)]
    text: Part = None
    html: Part = None

    @model_validator(mode="after")
    def _a_body(self) -> TemplateSource:
        if self.text is None and self.html is None:
            raise ValueError("needs a body: text, html or both")
        return self


class TemplateRef(BaseModel):
    """``{"name": N, "version": V}`` (V left out: the newest, pinned by the producer at
    publish time) or ``{"inline": {"subject": ..., "text": ..., "html": ...}}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, AfterValidator(check_template_name)] | None = None
    version: int | None = Field(default=None, ge=1)
    inline: TemplateSource | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> TemplateRef:
        if (self.name is None) == (self.inline is None):
            raise ValueError("give either name (and version) or inline, not both or neither")
        if self.inline is not None and self.version is not None:
            raise ValueError("an inline template has no version")
        return self

    @field_validator("version", mode="before")
    @classmethod
    def _whole(cls, value: Any) -> Any:
        if isinstance(value, bool) or (value is not None and not isinstance(value, int)):
            raise ValueError("must be a whole number of at least 1")
        return value

    def label(self) -> str:
        """``welcome v3``, ``welcome (newest)`` or ``inline``, for errors and logs."""
        if self.name is None:
            return "inline"
        return f"{self.name} v{self.version}" if self.version else f"{self.name} (newest)"


def check_variables(value: dict[str, Any]) -> dict[str, Any]:
    size = len(json.dumps(value, ensure_ascii=False).encode())
    if size > MAX_VARIABLES_BYTES:
        raise ValueError(f"are {size} bytes of JSON, more than the cap of {MAX_VARIABLES_BYTES}")
    return value


Variables = Annotated[dict[str, Any], AfterValidator(check_variables)]
