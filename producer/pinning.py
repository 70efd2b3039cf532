"""Pinning a job's template version at publish time: a job that names a stored template
without a version gets the newest one, written into the job, so a retry days later renders
exactly what the first attempt did. A version that is not stored is refused before anything
is published."""

from __future__ import annotations

from collections.abc import Sequence

import redis

from mailfleet.shared.errors import TemplateNotFound
from mailfleet.shared.job import EmailJob
from mailfleet.shared.redis_client import make_redis
from mailfleet.shared.settings import Settings
from mailfleet.shared.templates.store import TemplateStore


class VersionPinner:
    """Opens its Redis connection only when a job names a stored template."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._client: redis.Redis | None = None

    def pin(self, jobs: Sequence[EmailJob]) -> list[EmailJob]:
        """``jobs`` with every named template's version set (one Redis round trip)."""
        names = {job.template.name for job in jobs if job.template and job.template.name}
        if not names:
            return list(jobs)
        newest = self.store().latest(names)
        pinned, unknown = [], []
        for job in jobs:
            ref = job.template
            name = ref.name if ref is not None else None
            if ref is None or name is None:
                pinned.append(job)
            elif ref.version is None:
                version = {"version": newest[name]}
                pinned.append(job.model_copy(update={"template": ref.model_copy(update=version)}))
            else:
                if ref.version > newest[name]:
                    unknown.append(f"{job.id} ({ref.label()})")
                pinned.append(job)
        if unknown:
            raise TemplateNotFound(f"no such template version for: {', '.join(unknown[:5])}")
        return pinned

    def store(self) -> TemplateStore:
        if self._client is None:
            self._client = make_redis(self._settings)
        return TemplateStore(self._client, self._settings.names)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
