"""Turning a templated job into the finished email the MIME builder takes: the stored (or
inline) template rendered with the job's variables (``shared/templates/render.py``).

A stored version never changes, so its compiled form is kept per ``(name, version)`` for the
life of the process: the first job of a version fetches its source (one Redis read, through
the gate), every later one renders straight from memory. A failure to render is a
:class:`RenderError`, which the pipeline dead-letters as ``invalid``.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from mailfleet.shared.errors import RenderError
from mailfleet.shared.job import EmailJob
from mailfleet.shared.template_ref import TemplateRef
from mailfleet.shared.templates.store import TemplateStore
from mailfleet.worker.redis_gate import RedisGate

if TYPE_CHECKING:
    from mailfleet.shared.templates.render import CompiledTemplate, Renderer


class Stopping(Exception):
    """The worker stopped while Redis was away, before the template could be read."""


class Personaliser:
    def __init__(self, store: TemplateStore, max_rendered_bytes: int, gate: RedisGate) -> None:
        self._store = store
        self._max_rendered_bytes = max_rendered_bytes
        self._renderer_built: Renderer | None = None
        self._lock = threading.Lock()
        self._gate = gate

    @property
    def _renderer(self) -> Renderer:
        """Jinja2 is loaded with the first templated job, not at start-up (about 14 ms that
        a worker sending only literal emails never needs)."""
        if self._renderer_built is None:
            with self._lock:
                if self._renderer_built is None:
                    from mailfleet.shared.templates.render import Renderer  # noqa: PLC0415

                    self._renderer_built = Renderer(self._max_rendered_bytes)
        return self._renderer_built

    def apply(self, job: EmailJob) -> EmailJob:
        """``job`` with its template rendered into subject, text and html (a job without a
        template as it is); :class:`RenderError` or :class:`Stopping`."""
        ref = job.template
        if ref is None:
            return job
        compiled = self._compiled(ref)
        rendered = self._renderer.render(compiled, job.variables or {})
        # Rendered from checked parts: copied, not validated again (the hot path).
        update = {"subject": rendered.subject, "text": rendered.text, "html": rendered.html}
        return job.model_copy(update=update)

    def _compiled(self, ref: TemplateRef) -> CompiledTemplate:
        if ref.inline is not None:
            return self._renderer.inline(ref.inline)
        name, version = ref.name, ref.version
        if name is None or version is None:
            raise RenderError(
                ref.label(),
                "no version: publish through mailfleet's producer, which pins the newest, "
                "or name the version",
            )
        label = ref.label()
        return self._renderer.cached(
            ("stored", name, version), lambda: self._fetch(label, name, version)
        )

    def _fetch(self, label: str, name: str, version: int) -> CompiledTemplate:
        sources = self._gate.run(lambda: self._store.get_many([(name, version)]))
        if sources is None:
            raise Stopping
        source = sources[0]
        if source is None:
            raise RenderError(label, "no such template version in the store")
        return self._renderer.compile(label, source)
