"""Named templates in Redis, with immutable versions: ``{ns}:template:<name>`` is a hash of
``v<N>`` → the source as JSON, ``t<N>`` → when it was put, and ``latest`` → N; the set
``{ns}:templates`` names them all. A version, once stored, never changes, so a job pinned to
``(name, version)`` renders the same on every retry, and a worker may cache it for good."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import redis
from pydantic import ValidationError

from mailfleet.shared.errors import InvalidJobError, TemplateNotFound
from mailfleet.shared.job import problems_of
from mailfleet.shared.names import Names
from mailfleet.shared.redis_client import redis_errors
from mailfleet.shared.template_ref import TemplateSource, check_template_name

_PUT = files("mailfleet.shared.templates").joinpath("put.lua").read_text()
# The files of a template directory, by the part each holds.
PART_FILES = {"subject": "subject.txt", "text": "text.txt", "html": "html.html"}


@dataclass(frozen=True)
class Version:
    number: int
    put_at: float


def read_directory(directory: Path) -> TemplateSource:
    """A template from DIR: ``subject.txt`` and at least one of ``text.txt`` and ``html.html``
    (UTF-8); :class:`InvalidJobError` naming the file that is missing or bad."""
    if not directory.is_dir():
        raise InvalidJobError([(str(directory), "is not a directory")])
    parts: dict[str, str] = {}
    for part, name in PART_FILES.items():
        path = directory / name
        if path.is_file():
            try:
                parts[part] = path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                raise InvalidJobError([(name, "is not UTF-8 text")]) from None
    if "subject" not in parts:
        raise InvalidJobError([(PART_FILES["subject"], f"missing from {directory}")])
    if "text" not in parts and "html" not in parts:
        raise InvalidJobError([("text.txt, html.html", f"neither is in {directory}")])
    parts["subject"] = parts["subject"].strip()  # the file's final newline is no part of it
    try:
        return TemplateSource.model_validate(parts)
    except ValidationError as exc:
        raise InvalidJobError(problems_of(exc)) from None


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class TemplateStore:
    def __init__(self, client: redis.Redis, names: Names) -> None:
        self._client = client
        self._names = names
        self._put = client.register_script(_PUT)

    def put(self, name: str, source: TemplateSource) -> tuple[int, bool]:
        """Store ``source`` as ``name``'s next version: (version, True); or (the newest,
        False) when the newest already holds exactly this source."""
        check_template_name(name)
        keys = [self._names.template(name), self._names.template_index]
        with redis_errors("cannot store the template"):
            version, new = self._put(
                keys=keys, args=[name, source.model_dump_json(), str(time.time())]
            )
        return int(version), bool(new)

    def latest(self, names: Iterable[str]) -> dict[str, int]:
        """The newest version of each of ``names`` (one round trip); TemplateNotFound
        naming those that are not stored."""
        wanted = sorted(set(names))
        pipeline = self._client.pipeline(transaction=False)
        for name in wanted:
            pipeline.hget(self._names.template(name), "latest")
        with redis_errors("cannot read the template store"):
            answers = pipeline.execute()
        missing = [name for name, answer in zip(wanted, answers, strict=True) if answer is None]
        if missing:
            raise TemplateNotFound(f"no template named {', '.join(missing)}")
        return {name: int(answer) for name, answer in zip(wanted, answers, strict=True)}

    def get_many(self, refs: Sequence[tuple[str, int]]) -> list[TemplateSource | None]:
        """The sources of ``(name, version)`` pairs, in one round trip; None where absent."""
        pipeline = self._client.pipeline(transaction=False)
        for name, version in refs:
            pipeline.hget(self._names.template(name), f"v{version}")
        with redis_errors("cannot read the template store"):
            answers = pipeline.execute()
        return [None if raw is None else TemplateSource.model_validate_json(raw) for raw in answers]

    def get(self, name: str, version: int | None = None) -> tuple[int, TemplateSource]:
        """``name`` at ``version`` (the newest if None); TemplateNotFound if absent."""
        number = version if version is not None else self.latest([name])[name]
        source = self.get_many([(name, number)])[0]
        if source is None:
            raise TemplateNotFound(f"template {name} has no version {number}")
        return number, source

    def names(self) -> list[str]:
        with redis_errors("cannot read the template store"):
            members = self._client.smembers(self._names.template_index)
        return sorted(_text(member) for member in members)

    def versions(self, name: str) -> list[Version]:
        """Every stored version of ``name``, oldest first; TemplateNotFound if none."""
        with redis_errors("cannot read the template store"):
            stored = self._client.hgetall(self._names.template(name))
        times = {
            int(field[1:]): float(value)
            for field, value in ((_text(k), v) for k, v in stored.items())
            if field.startswith("t")
        }
        if not times:
            raise TemplateNotFound(f"no template named {name}")
        return [Version(number, times[number]) for number in sorted(times)]
