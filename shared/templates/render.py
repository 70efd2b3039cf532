"""Rendering a template's subject, text and html with a job's variables, in Jinja2's sandbox.

``ImmutableSandboxedEnvironment`` (no attribute starting with ``_``, no mutating methods, no
``str.format`` tricks: Jinja2 >= 3.1.6 closes CVE-2024-56326 and CVE-2025-27516) with
``StrictUndefined``, so a missing variable fails instead of rendering ``Dear ,``. HTML is
autoescaped, text and subject are not. Every failure is one :class:`RenderError` naming the
part and the problem; nothing is ever returned half-rendered. The rendered subject may hold
no line break, and the whole output is capped while it is produced, so a template that loops
cannot build a huge string first.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from mailfleet.shared.errors import RenderError
from mailfleet.shared.template_ref import TemplateSource
from mailfleet.shared.text import has_line_break

DEFAULT_MAX_RENDERED_BYTES = 2 * 1024 * 1024
_CACHE_SIZE = 512


@dataclass(frozen=True)
class RenderedEmail:
    """What the MIME builder takes: the subject and the bodies."""

    subject: str
    text: str | None
    html: str | None


def _problem(exc: Exception) -> str:
    if isinstance(exc, jinja2.exceptions.SecurityError):
        return f"unsafe template code refused by the sandbox: {exc}"
    if isinstance(exc, jinja2.exceptions.UndefinedError):
        return f"missing variable: {exc}"
    if isinstance(exc, jinja2.exceptions.TemplateSyntaxError):
        return f"syntax error on line {exc.lineno}: {exc.message}"
    return f"cannot render: {type(exc).__name__}: {exc}"


class _OverCap(Exception):
    pass


@dataclass(frozen=True)
class CompiledTemplate:
    """A template's parts, compiled once; :meth:`render` is safe from several threads."""

    label: str
    subject: jinja2.Template
    text: jinja2.Template | None
    html: jinja2.Template | None

    def render(self, variables: Mapping[str, Any], max_bytes: int) -> RenderedEmail:
        # One namespace for the three parts: Template.generate would merge the globals into
        # a copy of the variables once per part, a third of a render's cost. Both of the
        # Renderer's environments have Jinja's default globals, so the subject's serve all.
        namespace = {**self.subject.globals, **variables}
        budget = [max_bytes]
        subject = self._part("subject", self.subject, namespace, budget)
        if has_line_break(subject):
            raise RenderError(self.label, "subject: rendered with a line break (CR, LF or NUL)")
        text = None if self.text is None else self._part("text", self.text, namespace, budget)
        html = None if self.html is None else self._part("html", self.html, namespace, budget)
        return RenderedEmail(subject, text, html)

    def _part(
        self, part: str, template: jinja2.Template, namespace: dict[str, Any], budget: list[int]
    ) -> str:
        chunks = []
        try:
            context = template.new_context(namespace, shared=True)
            for chunk in template.root_render_func(context):
                budget[0] -= len(chunk)  # characters: never fewer than the UTF-8 bytes
                if budget[0] < 0:
                    raise _OverCap
                chunks.append(chunk)
        except _OverCap:
            raise RenderError(self.label, f"{part}: rendered output over the cap") from None
        # A template can raise anything its filters and operators raise (TypeError for
        # 1 + 'a', ZeroDivisionError...); every one of them means "not renderable".
        except Exception as exc:
            raise RenderError(self.label, f"{part}: {_problem(exc)}") from exc
        return "".join(chunks)


class Renderer:
    """The two sandboxed environments and a cache of compiled templates, by key: stored
    versions never change, so ``(name, version)`` names its compiled form for good."""

    def __init__(self, max_rendered_bytes: int = DEFAULT_MAX_RENDERED_BYTES) -> None:
        self.max_rendered_bytes = max_rendered_bytes
        self._text = ImmutableSandboxedEnvironment(
            undefined=jinja2.StrictUndefined, autoescape=False
        )
        self._html = ImmutableSandboxedEnvironment(
            undefined=jinja2.StrictUndefined, autoescape=True
        )
        self._cache: dict[Hashable, CompiledTemplate] = {}
        self._lock = threading.Lock()

    def compile(self, label: str, source: TemplateSource) -> CompiledTemplate:
        """Compile ``source``; :class:`RenderError` names a syntax error's part and line."""
        text, html = source.text, source.html
        return CompiledTemplate(
            label,
            self._compile(label, "subject", self._text, source.subject),
            None if text is None else self._compile(label, "text", self._text, text),
            None if html is None else self._compile(label, "html", self._html, html),
        )

    def cached(self, key: Hashable, build: Callable[[], CompiledTemplate]) -> CompiledTemplate:
        """The compiled template under ``key``, built by ``build`` the first time."""
        compiled = self._cache.get(key)
        if compiled is None:
            compiled = build()
            with self._lock:
                if len(self._cache) >= _CACHE_SIZE:  # drop the oldest entry
                    self._cache.pop(next(iter(self._cache)))
                self._cache[key] = compiled
        return compiled

    def inline(self, source: TemplateSource) -> CompiledTemplate:
        """An inline template, compiled once per distinct source."""
        digest = hashlib.sha256(source.model_dump_json().encode()).digest()
        return self.cached(("inline", digest), lambda: self.compile("inline", source))

    def render(self, compiled: CompiledTemplate, variables: Mapping[str, Any]) -> RenderedEmail:
        return compiled.render(variables, self.max_rendered_bytes)

    @staticmethod
    def _compile(
        label: str, part: str, environment: jinja2.Environment, text: str
    ) -> jinja2.Template:
        try:
            return environment.from_string(text)
        except jinja2.exceptions.TemplateSyntaxError as exc:
            raise RenderError(label, f"{part}: {_problem(exc)}") from exc
