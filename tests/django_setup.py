"""Django configured once for the tests of the email backend: an in-memory SQLite database
(so ``transaction.atomic`` and ``on_commit`` are real) and mailfleet as ``EMAIL_BACKEND``."""

from __future__ import annotations

import django
from django.conf import settings


def configure_django() -> None:
    """Configure Django settings and apps, once per test session."""
    if settings.configured:
        return
    settings.configure(
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        EMAIL_BACKEND="mailfleet.producer.django.EmailBackend",
        DEFAULT_FROM_EMAIL="Webmaster <webmaster@example.com>",
        USE_TZ=True,
    )
    django.setup()
