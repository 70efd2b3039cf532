"""SMTP relay addresses: ``smtp://[user:pass@]host:port[?starttls=true]`` or ``smtps://``."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit

from pydantic import SecretStr

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_DEFAULT_PORTS = {"smtp": 25, "smtps": 465}


@dataclass(frozen=True)
class Relay:
    """One SMTP relay; the password is a ``SecretStr`` and never shows in ``repr`` or logs."""

    host: str
    port: int
    implicit_tls: bool = False
    starttls: bool = False
    username: str | None = None
    password: SecretStr | None = field(default=None, repr=False)
    weight: int = 1

    @property
    def name(self) -> str:
        """``host:port``: how logs and metrics name the relay (no credentials)."""
        return f"{self.host}:{self.port}"

    @classmethod
    def parse(cls, url: str) -> Relay:
        parts = urlsplit(url.strip())
        if parts.scheme not in _DEFAULT_PORTS:
            raise ValueError("relay URL must start with smtp:// or smtps://")
        if not parts.hostname:
            raise ValueError("relay URL has no host")
        try:
            port = _DEFAULT_PORTS[parts.scheme] if parts.port is None else parts.port
        except ValueError as exc:
            raise ValueError("relay URL has an invalid port") from exc
        if not 0 < port < 65536:
            raise ValueError("relay URL has an invalid port")
        options = {key: values[-1].lower() for key, values in parse_qs(parts.query).items()}
        unknown = set(options) - {"starttls", "weight"}
        if unknown:
            raise ValueError(f"unknown relay option(s): {', '.join(sorted(unknown))}")
        starttls = options.get("starttls", "false")
        if starttls not in _TRUE | _FALSE:
            raise ValueError("starttls must be true or false")
        weight = options.get("weight", "1")
        if not weight.isdigit() or int(weight) < 1:
            raise ValueError("weight must be a whole number of at least 1")
        return cls(
            host=parts.hostname,
            port=port,
            implicit_tls=parts.scheme == "smtps",
            starttls=starttls in _TRUE,
            username=unquote(parts.username) if parts.username else None,
            password=SecretStr(unquote(parts.password)) if parts.password else None,
            weight=int(weight),
        )
