"""A Django email backend that publishes mail to mailfleet instead of talking SMTP.

::

    EMAIL_BACKEND = "mailfleet.producer.django.EmailBackend"
    MAILFLEET_LANE = "transactional"   # or "bulk"
    MAILFLEET_NAMESPACE = "mailfleet"  # optional; else MAILFLEET_NAMESPACE from the environment
    MAILFLEET_ON_COMMIT = True         # publish after the current transaction commits
    MAILFLEET_SETTINGS = {"amqp_url": "amqp://..."}  # optional overrides of any MAILFLEET_* setting

Each message becomes one :class:`EmailJob` (see :mod:`mailfleet.producer.django.conversion`),
published with :meth:`Producer.publish_many` and publisher confirms. Inside an atomic block
the jobs are published by ``transaction.on_commit`` (nothing is sent for a rolled-back
transaction); outside one, or with ``MAILFLEET_ON_COMMIT = False``, at once.
``send_messages`` returns how many messages were accepted for publishing. With
``fail_silently`` every mailfleet error is logged and counted in :attr:`EmailBackend.failed`
instead of raised. The keyword arguments of ``get_connection`` (``lane``, ``namespace``,
``on_commit``, ``using``, ``mailfleet_settings``) override the Django settings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import structlog
from django.conf import settings as django_settings
from django.core.mail.backends.base import BaseEmailBackend
from django.db import transaction

from mailfleet.producer.django.conversion import job_from_message
from mailfleet.producer.django.log_routing import route_logs_to_stdlib
from mailfleet.producer.publisher import Producer
from mailfleet.shared.errors import ConfigError, InvalidJobError, MailfleetError, PublishError
from mailfleet.shared.job import EmailJob, Lane
from mailfleet.shared.settings import ENV_PREFIX, Settings, load_settings

log = structlog.get_logger("mailfleet.django")


@dataclass(frozen=True)
class BackendConfig:
    """What the backend needs, read once from Django settings, the environment and kwargs."""

    settings: Settings
    lane: Lane = Lane.TRANSACTIONAL
    on_commit: bool = True
    using: str | None = None
    outbox: bool = False  # MAILFLEET_DJANGO_OUTBOX: rows in the caller's transaction (outbox.py)


def _overrides(values: Mapping[str, Any]) -> dict[str, Any]:
    """``MAILFLEET_SETTINGS`` keys (``amqp_url`` or ``MAILFLEET_AMQP_URL``) as Settings fields."""
    overrides = {}
    for key, value in values.items():
        field = str(key).lower().removeprefix(ENV_PREFIX.lower())
        if field not in Settings.model_fields:
            raise ConfigError(f"MAILFLEET_SETTINGS: {key!r} is not a mailfleet setting")
        overrides[field] = value
    return overrides


def backend_config(
    *,
    lane: str | None = None,
    namespace: str | None = None,
    on_commit: bool | None = None,
    using: str | None = None,
    mailfleet_settings: Settings | None = None,
) -> BackendConfig:
    """Keyword arguments win over Django settings, which win over ``MAILFLEET_*`` variables."""
    settings = mailfleet_settings
    if settings is None:
        overrides = _overrides(getattr(django_settings, "MAILFLEET_SETTINGS", None) or {})
        namespace = namespace or getattr(django_settings, "MAILFLEET_NAMESPACE", None)
        if namespace:
            overrides["namespace"] = namespace
        settings = load_settings(**overrides)
    elif namespace:
        settings = settings.model_copy(update={"namespace": namespace})
    lane = str(lane or getattr(django_settings, "MAILFLEET_LANE", Lane.TRANSACTIONAL.value))
    try:
        chosen_lane = Lane(lane)
    except ValueError:
        choices = ", ".join(item.value for item in Lane)
        raise ConfigError(f"MAILFLEET_LANE: {lane!r} is not one of {choices}") from None
    if on_commit is None:
        on_commit = bool(getattr(django_settings, "MAILFLEET_ON_COMMIT", True))
    outbox = bool(getattr(django_settings, "MAILFLEET_DJANGO_OUTBOX", False))
    using = using or getattr(django_settings, "MAILFLEET_DATABASE", None)  # the outbox's
    return BackendConfig(settings, chosen_lane, on_commit, using, outbox)


class EmailBackend(BaseEmailBackend):  # type: ignore[misc]  # django ships no type hints
    """Publishes Django email to mailfleet; one :class:`Producer` per open connection."""

    def __init__(
        self,
        fail_silently: bool = False,
        *,
        lane: str | None = None,
        namespace: str | None = None,
        on_commit: bool | None = None,
        using: str | None = None,
        mailfleet_settings: Settings | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(fail_silently=fail_silently, **kwargs)
        route_logs_to_stdlib()  # also without the app installed
        self.config = backend_config(
            lane=lane,
            namespace=namespace,
            on_commit=on_commit,
            using=using,
            mailfleet_settings=mailfleet_settings,
        )
        self.failed = 0  # messages that fail_silently swallowed
        self._producer: Producer | None = None

    def open(self) -> bool:
        """Connect (and declare the topology); True if this call opened the connection."""
        if self._producer is not None:
            return False
        try:
            self._producer = Producer(self.config.settings)
        except MailfleetError as exc:
            if not self.fail_silently:
                raise
            log.error("django_connect_failed", error=str(exc))
            return False
        return True

    def close(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            producer.close()

    def send_messages(self, email_messages: Sequence[Any]) -> int:
        """Convert every message, then publish them (now, or when the transaction commits)."""
        jobs = self._jobs(email_messages)
        if not jobs:
            return 0
        using = self.config.using
        if self.config.outbox:  # no broker I/O: the relay publishes what commits
            from mailfleet.producer.django.outbox import write_outbox  # noqa: PLC0415 (needs the app)

            write_outbox(jobs, self.config.settings.namespace, using)
            return len(jobs)
        if self.config.on_commit and transaction.get_connection(using).in_atomic_block:
            transaction.on_commit(partial(self._publish_after_commit, jobs), using=using)
            return len(jobs)
        return self._publish(jobs)

    def _publish_after_commit(self, jobs: list[EmailJob]) -> None:
        """After the commit there is no caller left to raise to, and raising would stop
        Django's other on-commit callbacks (more mail among them): log and count instead."""
        try:
            self._publish(jobs)
        except MailfleetError as exc:
            self._swallow(len(jobs), exc)

    def _jobs(self, email_messages: Sequence[Any]) -> list[EmailJob]:
        jobs = []
        for message in email_messages:
            if not message.recipients():
                continue  # as Django's SMTP backend does: nothing to send, not counted
            try:
                jobs.append(
                    job_from_message(
                        message, lane=self.config.lane, limits=self.config.settings.job_limits
                    )
                )
            except InvalidJobError as exc:
                if not self.fail_silently:
                    raise
                self._swallow(1, exc)
        return jobs

    def _publish(self, jobs: list[EmailJob]) -> int:
        """Publish with confirms; return how many the broker took."""
        opened = self.open()
        try:
            if self._producer is None:  # open() failed silently, and said why
                self.failed += len(jobs)
                return 0
            self._producer.publish_many(jobs)
        except PublishError as exc:
            if not self.fail_silently:
                raise
            self._swallow(len(exc.message_ids), exc)
            return len(jobs) - len(exc.message_ids)
        except MailfleetError as exc:
            if not self.fail_silently:
                raise
            self._swallow(len(jobs), exc)
            return 0
        finally:
            if opened:
                self.close()
        log.debug("django_published", count=len(jobs), lane=self.config.lane.value)
        return len(jobs)

    def _swallow(self, count: int, exc: MailfleetError) -> None:
        self.failed += count
        log.error("django_send_failed", failed=count, error_type=type(exc).__name__, error=str(exc))
