"""The Django app of mailfleet: ``INSTALLED_APPS = [..., "mailfleet.producer.django"]``.

Installing it is needed for the outbox (its model and migration) and for the relay thread;
the email backend alone works without it. On start-up it routes mailfleet's logs through
the standard ``logging`` module (``producer/django/log_routing.py``) and, with
``MAILFLEET_OUTBOX_RELAY_THREAD = True``, starts the outbox relay on a thread.
"""

from __future__ import annotations

from django.apps import AppConfig
from django.conf import settings as django_settings


class MailfleetConfig(AppConfig):  # type: ignore[misc]  # django ships no type hints
    name = "mailfleet.producer.django"
    label = "mailfleet"
    verbose_name = "mailfleet"
    default_auto_field = "django.db.models.AutoField"

    def ready(self) -> None:
        from mailfleet.producer.django.log_routing import route_logs_to_stdlib  # noqa: PLC0415

        route_logs_to_stdlib()
        if getattr(django_settings, "MAILFLEET_OUTBOX_RELAY_THREAD", False):
            from mailfleet.producer.django.relay_thread import start_relay_thread  # noqa: PLC0415

            start_relay_thread()
