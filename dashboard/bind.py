"""Where the dashboard may listen: loopback freely, anywhere else only with a token."""

from __future__ import annotations

import ipaddress

from pydantic import SecretStr

from mailfleet.shared.errors import ConfigError

TOKEN_VARIABLE = "MAILFLEET_DASHBOARD_TOKEN"  # noqa: S105 (the variable's name, not a secret)


def is_loopback(host: str) -> bool:
    """``127.0.0.1``, ``::1``, ``localhost``: reachable from this machine only."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def check_bind(host: str, token: SecretStr | None) -> None:
    """Refuse, in one line, to listen beyond loopback without a token."""
    if not is_loopback(host) and (token is None or not token.get_secret_value()):
        raise ConfigError(
            f"--host {host} is not a loopback address: set {TOKEN_VARIABLE} to bind there"
        )
