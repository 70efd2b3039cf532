"""Test namespaces: each test gets its own, removed after it.

The broker and Redis can be shared with other runs (other checkouts, CI), so every
namespace of a run starts with ``test-<run id>-``: that prefix tells this run's names from
theirs.
"""

from __future__ import annotations

import os
import re
import secrets
import uuid

from pydantic import SecretStr

from mailfleet.producer.devtools.namespace import remove_namespace as remove_mailfleet_namespace
from mailfleet.shared.settings import Settings

RUN_ID_VARIABLE = "MAILFLEET_TEST_RUN_ID"  # set it to choose the run's prefix
_RUN_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,30}")

# The delay tiers the integration fixtures configure; with the defaults (the Django backend
# and commands given only a namespace declare those), every tier a test namespace can have.
TEST_RETRY_DELAYS = [0.3, 0.6]
_DEFAULT_RETRY_DELAYS: list[float] = Settings.model_fields["retry_delays"].get_default(
    call_default_factory=True
)
ALL_RETRY_DELAYS = sorted({*TEST_RETRY_DELAYS, *_DEFAULT_RETRY_DELAYS})


def _run_id() -> str:
    run_id = os.environ.get(RUN_ID_VARIABLE) or secrets.token_hex(3)
    if _RUN_ID.fullmatch(run_id) is None:
        raise ValueError(f"{RUN_ID_VARIABLE}={run_id!r}: use 1-31 of a-z, 0-9 and '-'")
    return run_id


RUN_ID = _run_id()
RUN_PREFIX = f"test-{RUN_ID}-"


def new_namespace() -> str:
    """A fresh namespace under the run's prefix."""
    return f"{RUN_PREFIX}{uuid.uuid4().hex[:10]}"


def remove_namespace(amqp_url: str, redis_url: str, namespace: str) -> None:
    """Delete the namespace's queues (lanes, every delay tier, dead letters), exchanges and
    Redis keys; deleting what does not exist is no error."""
    settings = Settings(
        amqp_url=SecretStr(amqp_url),
        redis_url=SecretStr(redis_url),
        namespace=namespace,
        retry_delays=ALL_RETRY_DELAYS,
    )
    remove_mailfleet_namespace(settings)
