"""Reading the DKIM private keys at start-up: every problem stops the worker with one line
naming the domain (``MAILFLEET_DKIM_KEYS: example.com: ...``), never with the key itself.

RSA keys are PEM (PKCS#1 or PKCS#8, as ``openssl genrsa`` writes them) of at least 2048
bits; Ed25519 keys are PEM PKCS#8 (``openssl genpkey -algorithm ed25519``) or the base64
seed that dkimpy's ``dknewkey`` writes.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from dkim.crypto import UnparsableKeyError, parse_pem_private_key

from mailfleet.shared.dkim_config import DkimKeyFile
from mailfleet.shared.errors import ConfigError
from mailfleet.worker.mime.dkim_rsa import load_rsa

MIN_RSA_BITS = 2048
_SETTING = "MAILFLEET_DKIM_KEYS"
_PEM = re.compile(rb"-----BEGIN ([A-Z ]+)-----\s*(.*?)\s*-----END \1-----", re.DOTALL)
# PKCS#8 wrapping of an Ed25519 seed (RFC 8410): this prefix, then the 32 bytes.
_ED25519_PKCS8 = bytes.fromhex("302e020100300506032b657004220420")
_SEED_BYTES = 32


class Algorithm(StrEnum):
    RSA = "rsa-sha256"
    ED25519 = "ed25519-sha256"


@dataclass(frozen=True)
class DkimKey:
    """A loaded signing key; ``private`` is in the form dkimpy's ``sign`` takes (PEM for
    RSA, the base64 seed for Ed25519) and never shows in ``repr``."""

    domain: str
    selector: str
    algorithm: Algorithm
    private: bytes = field(repr=False)
    rsa: RSAPrivateKey | None = field(default=None, repr=False)  # OpenSSL's copy, to sign


def load_keys(config: dict[str, list[DkimKeyFile]]) -> dict[str, list[DkimKey]]:
    """Every domain's keys, read and checked; :class:`ConfigError` for the first bad one."""
    keys: dict[str, list[DkimKey]] = {}
    for domain, files in config.items():
        loaded = [_load(domain, entry) for entry in files]
        if len({key.algorithm for key in loaded}) < len(loaded):
            raise ConfigError(
                f"{_SETTING}: {domain}: dual signing needs one RSA and one Ed25519 key"
            )
        keys[domain] = loaded
    return keys


def _load(domain: str, entry: DkimKeyFile) -> DkimKey:
    try:
        data = entry.key_file.read_bytes()
    except OSError as exc:
        raise _problem(domain, entry.key_file, f"cannot be read ({exc.strerror})") from None
    algorithm, private = _parse(domain, entry.key_file, data)
    if algorithm is Algorithm.ED25519:
        return DkimKey(domain, entry.selector, algorithm, private)
    try:
        openssl = load_rsa(private)
    except (TypeError, ValueError):
        raise _problem(domain, entry.key_file, "is not an RSA or Ed25519 private key") from None
    return DkimKey(domain, entry.selector, algorithm, private, openssl)


def _parse(domain: str, path: Path, data: bytes) -> tuple[Algorithm, bytes]:
    pem = _PEM.search(data)
    if pem is None:
        return Algorithm.ED25519, _seed(domain, path, data.strip())
    try:
        der = base64.b64decode(pem.group(2), validate=False)
    except binascii.Error:
        raise _problem(domain, path, "is not a PEM private key") from None
    if der.startswith(_ED25519_PKCS8) and len(der) == len(_ED25519_PKCS8) + _SEED_BYTES:
        return Algorithm.ED25519, base64.b64encode(der[len(_ED25519_PKCS8) :])
    # dkimpy's PEM reader wants LF line ends around the base64
    normal = b"-----BEGIN %s-----\n%s\n-----END %s-----\n" % (
        pem.group(1),
        b"\n".join(pem.group(2).split()),
        pem.group(1),
    )
    try:
        bits = int(parse_pem_private_key(normal)["modulus"]).bit_length()
    except (UnparsableKeyError, KeyError, IndexError, TypeError, ValueError):
        raise _problem(domain, path, "is not an RSA or Ed25519 private key") from None
    if bits < MIN_RSA_BITS:
        raise _problem(domain, path, f"is a {bits}-bit RSA key; at least {MIN_RSA_BITS} needed")
    return Algorithm.RSA, normal


def _seed(domain: str, path: Path, text: bytes) -> bytes:
    """dkimpy's own Ed25519 format: the 32-byte seed in base64."""
    try:
        seed = base64.b64decode(text, validate=True)
    except binascii.Error:
        seed = b""
    if len(seed) != _SEED_BYTES:
        raise _problem(domain, path, "is not a PEM key or a base64 Ed25519 seed")
    return base64.b64encode(seed)


def _problem(domain: str, path: Path, what: str) -> ConfigError:
    return ConfigError(f"{_SETTING}: {domain}: key file {path} {what}")
