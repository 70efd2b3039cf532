"""DKIM keys made for a test, and a stub DNS that publishes their public halves, so that
``dkim.verify`` checks signatures exactly as a receiving mailbox provider would."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from pathlib import Path

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

_PEM = serialization.Encoding.PEM
_PKCS8 = serialization.PrivateFormat.PKCS8
_RAW = serialization.Encoding.Raw
_NO_PASSWORD = serialization.NoEncryption()


@dataclass
class StubDns:
    """TXT records by name, answered the way dkimpy's ``dnsfunc`` wants them."""

    records: dict[str, bytes] = field(default_factory=dict)
    asked: list[str] = field(default_factory=list)

    def publish(self, selector: str, domain: str, record: bytes) -> None:
        self.records[f"{selector}._domainkey.{domain}."] = record

    def __call__(self, name: bytes, timeout: int = 5) -> bytes | None:
        text = name.decode()
        self.asked.append(text)
        return self.records.get(text)


def rsa_key_file(path: Path, dns: StubDns, selector: str, domain: str, bits: int = 2048) -> Path:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    path.write_bytes(key.private_bytes(_PEM, _PKCS8, _NO_PASSWORD))
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    dns.publish(selector, domain, b"v=DKIM1; k=rsa; p=" + base64.b64encode(public))
    return path


def ed25519_key_file(
    path: Path, dns: StubDns, selector: str, domain: str, *, seed_only: bool = False
) -> Path:
    """An Ed25519 key as PEM PKCS#8, or (``seed_only``) as dkimpy's base64 seed."""
    key = ed25519.Ed25519PrivateKey.generate()
    if seed_only:
        raw = key.private_bytes(_RAW, serialization.PrivateFormat.Raw, _NO_PASSWORD)
        path.write_bytes(base64.b64encode(raw) + b"\n")
    else:
        path.write_bytes(key.private_bytes(_PEM, _PKCS8, _NO_PASSWORD))
    public = key.public_key().public_bytes(_RAW, serialization.PublicFormat.Raw)
    dns.publish(selector, domain, b"v=DKIM1; k=ed25519; p=" + base64.b64encode(public))
    return path


def signatures(message: bytes) -> list[dict[bytes, bytes]]:
    """The tags of each DKIM-Signature of ``message``, top first."""
    found = []
    for name, value in dkim.DKIM(message).headers:
        if name.lower() == b"dkim-signature":
            tags = re.sub(rb"\s+", b"", value).split(b";")
            found.append(dict(tag.split(b"=", 1) for tag in tags if tag))
    return found


def verify_each(message: bytes, dns: StubDns) -> list[bool]:
    """Whether each DKIM-Signature of ``message`` verifies, top first."""
    return [_verifies(message, index, dns) for index in range(len(signatures(message)))]


def _verifies(message: bytes, index: int, dns: StubDns) -> bool:
    try:
        return bool(dkim.DKIM(message).verify(idx=index, dnsfunc=dns))
    except dkim.DKIMException:  # a body hash mismatch is raised, not returned
        return False
