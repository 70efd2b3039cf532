"""DKIM signing (RFC 6376) with dkimpy, the last step of building a message.

A message is signed by the keys of its sender domain, or of the closest parent domain that
has keys (``d=example.com`` aligns with ``From: news.example.com`` under DMARC's relaxed
alignment). Two keys (RSA and Ed25519, RFC 8463) give two signatures over the same headers.
"""

from __future__ import annotations

import dkim

from mailfleet.worker.mime.dkim_keys import DkimKey
from mailfleet.worker.mime.dkim_rsa import OpenSslRsaDKIM

# The headers signed when present (From always is: dkimpy refuses to sign without it).
SIGNED_HEADERS = (
    b"from",
    b"to",
    b"cc",
    b"reply-to",
    b"subject",
    b"date",
    b"message-id",
    b"mime-version",
    b"content-type",
    b"list-unsubscribe",
    b"list-unsubscribe-post",
)
_CANONICALIZE = (b"relaxed", b"relaxed")  # survives relays that refold headers or lines


def header_names(message: bytes) -> set[bytes]:
    """The lower-cased names of the message's header fields."""
    head = message.split(b"\r\n\r\n", 1)[0]
    return {
        line.split(b":", 1)[0].strip().lower()
        for line in head.split(b"\r\n")
        if line and line[:1] not in b" \t"
    }


class DkimSigner:
    """Signs with the keys loaded at start-up; never logs or raises a key."""

    def __init__(self, keys: dict[str, list[DkimKey]]) -> None:
        self._keys = keys

    def keys_for(self, sender_domain: str) -> list[DkimKey]:
        """The keys of ``sender_domain`` or of its closest parent that has some."""
        labels = sender_domain.lower().split(".")
        for start in range(len(labels) - 1):
            keys = self._keys.get(".".join(labels[start:]))
            if keys:
                return keys
        return []

    def sign(self, message: bytes, sender_domain: str) -> bytes | None:
        """``message`` with a DKIM-Signature per key on top, or None when the domain has none."""
        keys = self.keys_for(sender_domain)
        if not keys:
            return None
        present = header_names(message)
        # From twice: a From added later on the way would then break the signature.
        signed = [b"from", *(name for name in SIGNED_HEADERS if name in present)]
        signatures = [self._signature(message, key, signed) for key in keys]
        return b"".join(signatures) + message

    @staticmethod
    def _signature(message: bytes, key: DkimKey, signed: list[bytes]) -> bytes:
        signer = (
            dkim.DKIM(message, linesep=b"\r\n")
            if key.rsa is None
            else OpenSslRsaDKIM(message, key.rsa)
        )
        return bytes(
            signer.sign(
                key.selector.encode(),
                key.domain.encode(),
                key.private,
                canonicalize=_CANONICALIZE,
                include_headers=signed,
                signature_algorithm=key.algorithm.value.encode(),
            )
        )
