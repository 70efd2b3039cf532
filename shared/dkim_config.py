"""``MAILFLEET_DKIM_KEYS``: which key signs the mail of which sender domain.

A JSON map from sender domain to ``{"selector": S, "key_file": PATH}``, or to a list of two
such entries for dual signing (one RSA key, one Ed25519 key)::

    {"example.com": [{"selector": "rsa1", "key_file": "/keys/example.com.rsa.pem"},
                     {"selector": "ed1", "key_file": "/keys/example.com.ed25519.pem"}]}

Only the shape is checked here, for every command that reads the settings; the worker reads
the key files once at start-up (``worker/mime/dkim_keys.py``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

_LABEL = r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)"
_DOMAIN = re.compile(rf"^{_LABEL}(\.{_LABEL})+$")
_SELECTOR = re.compile(rf"^{_LABEL}(\.{_LABEL})*$")
_MOST_KEYS = 2  # rsa-sha256 plus ed25519-sha256


class DkimKeyFile(BaseModel):
    """One signing key of a domain: its DNS selector and the file holding its private key."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    selector: str
    key_file: Path


def parse_dkim_keys(value: Any) -> dict[str, list[DkimKeyFile]]:
    """The map, domains lower-cased, each with one or two keys; ValueError names the domain."""
    if not isinstance(value, dict):
        raise ValueError('must be a JSON object like {"example.com": {"selector": ...}}')
    keys: dict[str, list[DkimKeyFile]] = {}
    for domain, entries in value.items():
        name = str(domain).lower().rstrip(".")
        if _DOMAIN.fullmatch(name) is None:
            raise ValueError(f"{domain!r} is not a domain name")
        listed = entries if isinstance(entries, list) else [entries]
        if not 1 <= len(listed) <= _MOST_KEYS:
            raise ValueError(f"{name}: give one key, or two for dual signing")
        try:
            files = [DkimKeyFile.model_validate(entry) for entry in listed]
        except ValidationError as exc:
            error = exc.errors(include_url=False)[0]
            where = ".".join(str(part) for part in error["loc"]) or "entry"
            raise ValueError(f"{name}: {where}: {error['msg']}") from None
        for entry in files:
            if _SELECTOR.fullmatch(entry.selector) is None:
                raise ValueError(f"{name}: {entry.selector!r} is not a DNS selector")
        keys[name] = files
    return keys
