"""The token of a one-click unsubscribe link (RFC 8058): who unsubscribes from what.

``<payload>.<mac>``, both base64url: the payload names the recipient, the sender domain and
the list; the mac is an HMAC-SHA256 of it under ``MAILFLEET_UNSUBSCRIBE_SECRET`` (128 bits
kept), so nobody without the secret can unsubscribe anyone. The payload is readable: the
link shows the address to whoever holds the email, as the email itself does.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

from pydantic import SecretStr

from mailfleet.shared.scope import Scope

_CONTEXT = b"mailfleet-unsubscribe-v1\n"
_MAC_BYTES = 16
_MAX_TOKEN = 1024


def _encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class UnsubscribeTokens:
    def __init__(self, secret: SecretStr) -> None:
        self._secret = secret.get_secret_value().encode()

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._secret, _CONTEXT + payload, hashlib.sha256).digest()[:_MAC_BYTES]

    def make(self, recipient: str, scope: Scope) -> str:
        payload = "\n".join((recipient.lower(), scope.sender_domain, scope.list_name)).encode()
        return f"{_encode(payload)}.{_encode(self._mac(payload))}"

    def read(self, token: str) -> tuple[str, Scope] | None:
        """The recipient and scope a genuine token names; None for anything else."""
        if len(token) > _MAX_TOKEN or token.count(".") != 1:
            return None
        payload_text, mac_text = token.split(".")
        try:
            payload, mac = _decode(payload_text), _decode(mac_text)
        except (binascii.Error, ValueError):
            return None
        if not hmac.compare_digest(mac, self._mac(payload)):
            return None
        parts = payload.decode("utf-8", "replace").split("\n")
        if len(parts) != 3 or not all(parts):
            return None
        recipient, domain, list_name = parts
        return recipient, Scope(domain, list_name)
