"""Standard Webhooks signatures (https://www.standardwebhooks.com) with the
``standardwebhooks`` package: every configured secret signs, so an endpoint can rotate its
secret without a gap (it accepts a request when any one signature verifies)."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from pydantic import SecretStr
from standardwebhooks import Webhook


class Signer:
    """The three Standard Webhooks headers of one request; holds the secrets, never shows them."""

    def __init__(self, secrets: list[SecretStr]) -> None:
        self._webhooks = [Webhook(secret.get_secret_value()) for secret in secrets]

    def __repr__(self) -> str:
        return f"Signer({len(self._webhooks)} secret(s))"

    def headers(self, message_id: str, payload: str, now: datetime | None = None) -> dict[str, str]:
        """``webhook-id``, ``webhook-timestamp`` (Unix seconds) and ``webhook-signature``
        (``v1,<base64>`` per secret, space-separated) for ``payload``, the exact body sent."""
        moment = (now or datetime.now(UTC)).astimezone(UTC)
        signatures = " ".join(hook.sign(message_id, moment, payload) for hook in self._webhooks)
        return {
            "webhook-id": message_id,
            "webhook-timestamp": str(math.floor(moment.timestamp())),
            "webhook-signature": signatures,
        }
