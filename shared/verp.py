"""VERP tokens: which job and recipient a bounce or a complaint is about.

With ``MAILFLEET_BOUNCE_DOMAIN`` set, each email goes out with the envelope sender
``bounces+<token>@<bounce domain>`` and the header ``X-Mailfleet-Ref: <token>``. A job id
may be 128 characters, too long for SMTP's 64-character local part, so the token carries
a digest of (job id, recipient), and the worker records what the digest stands for in
Redis when the relay accepts the email (``shared/sent_refs.py``). An HMAC under
``MAILFLEET_BOUNCE_SECRET`` makes the token unforgeable: a report whose token does not
verify is refused before Redis is even asked, so nobody can suppress an address by
sending us a made-up bounce.

The token is 26 characters of lower-case base32: 10 bytes of digest, 6 of MAC (48 bits:
a forger needs about 2**47 tries per success, each one a message to us). Lower case
because some MTAs fold the case of local parts.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass

from pydantic import SecretStr

_DIGEST_BYTES = 10
_MAC_BYTES = 6
TOKEN_LENGTH = 26  # base32 of 16 bytes, unpadded
REF_HEADER = "X-Mailfleet-Ref"


class ForgedToken(ValueError):
    """A token that is malformed or whose MAC does not verify."""


def ref_digest(job_id: str, recipient: str) -> str:
    """The digest that names one (job, recipient), as hex: the key of its sent reference."""
    name = f"{job_id}\0{recipient.lower()}".encode()
    return hashlib.sha256(name).digest()[:_DIGEST_BYTES].hex()


@dataclass(frozen=True)
class Verp:
    """Makes and opens the tokens of one bounce domain."""

    domain: str
    secret: SecretStr
    localpart: str = "bounces"

    def token(self, job_id: str, recipient: str) -> str:
        digest = bytes.fromhex(ref_digest(job_id, recipient))
        raw = digest + self._mac(digest)
        return base64.b32encode(raw).decode().rstrip("=").lower()

    def return_path(self, token: str) -> str:
        return f"{self.localpart}+{token}@{self.domain}"

    def open(self, token: str) -> str:
        """The digest ``token`` carries (hex); :class:`ForgedToken` unless we made it."""
        cleaned = token.strip().upper()
        if len(cleaned) != TOKEN_LENGTH:
            raise ForgedToken(f"a token has {TOKEN_LENGTH} characters, this one {len(cleaned)}")
        try:
            raw = base64.b32decode(cleaned + "======")
        except ValueError:
            raise ForgedToken("not base32") from None
        digest, mac = raw[:_DIGEST_BYTES], raw[_DIGEST_BYTES:]
        if not hmac.compare_digest(mac, self._mac(digest)):
            raise ForgedToken("its MAC does not verify")
        return digest.hex()

    def _mac(self, digest: bytes) -> bytes:
        key = self.secret.get_secret_value().encode()
        return hmac.new(key, digest, hashlib.sha256).digest()[:_MAC_BYTES]
