"""Django configured once for the tests of the email backend: an in-memory SQLite database
(so ``transaction.atomic`` and ``on_commit`` are real) and mailfleet as ``EMAIL_BACKEND``;
for the outbox, mailfleet's app and two more databases: PostgreSQL (a database of this run's
own on the local server, created by the outbox tests) and an SQLite file."""

from __future__ import annotations

import os
import tempfile

import django
from django.conf import settings

from tests.namespaces import RUN_ID

OUTBOX_POSTGRES = "outbox_postgres"
OUTBOX_SQLITE = "outbox_sqlite"
POSTGRES_DATABASE = f"mailfleet_test_{RUN_ID.replace('-', '_')}"
POSTGRES_HOST = os.environ.get("MAILFLEET_TEST_POSTGRES_HOST", "127.0.0.1")


def configure_django() -> None:
    """Configure Django settings and apps, once per test session."""
    if settings.configured:
        return
    settings.configure(
        DATABASES={
            "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"},
            OUTBOX_POSTGRES: {
                "ENGINE": "django.db.backends.postgresql",
                "NAME": POSTGRES_DATABASE,
                "HOST": POSTGRES_HOST,
                "PORT": "5432",
                "USER": "postgres",
            },
            OUTBOX_SQLITE: {
                "ENGINE": "django.db.backends.sqlite3",
                "NAME": os.path.join(tempfile.mkdtemp(prefix="mailfleet-outbox-"), "db.sqlite3"),
            },
        },
        INSTALLED_APPS=["mailfleet.producer.django"],
        EMAIL_BACKEND="mailfleet.producer.django.EmailBackend",
        DEFAULT_FROM_EMAIL="Webmaster <webmaster@example.com>",
        USE_TZ=True,
    )
    django.setup()
