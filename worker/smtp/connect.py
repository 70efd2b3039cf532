"""Opening a connection to a relay: implicit TLS or STARTTLS, EHLO, and AUTH when the relay
or the settings carry credentials. The transport (``transport.py``) pools what this opens."""

from __future__ import annotations

import functools
import smtplib
import ssl
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from mailfleet.shared.relays import Relay


@functools.cache
def tls_context(ca_file: Path | None) -> ssl.SSLContext:
    """The TLS context for relays, built on first use and shared by every sender: loading
    the system's CA store took ~25 ms per sender thread at start-up, even with no relay
    that uses TLS."""
    return ssl.create_default_context(cafile=str(ca_file) if ca_file else None)


@dataclass(frozen=True)
class Connector:
    """How this worker connects: the socket timeout, CA file and default credentials."""

    timeout: float
    ca_file: Path | None = None
    username: str | None = None
    password: SecretStr | None = None
    local_hostname: str | None = None

    def open(self, relay: Relay) -> smtplib.SMTP:
        """A connection to ``relay``, greeted, secured and logged in; smtplib raises on
        failure (a relay that does not offer STARTTLS when it must, a refused login)."""
        connection: smtplib.SMTP
        source = (relay.source, 0) if relay.source is not None else None
        if relay.implicit_tls:
            connection = smtplib.SMTP_SSL(
                relay.host,
                relay.port,
                self.local_hostname,
                timeout=self.timeout,
                context=tls_context(self.ca_file),
                source_address=source,
            )
        else:
            connection = smtplib.SMTP(
                relay.host,
                relay.port,
                self.local_hostname,
                timeout=self.timeout,
                source_address=source,
            )
        try:
            connection.ehlo()
            if relay.uses_starttls:
                connection.starttls(context=tls_context(self.ca_file))
                connection.ehlo()
            username = relay.username or self.username
            password = relay.password or self.password
            if username and password is not None:
                connection.login(username, password.get_secret_value())
        except BaseException:
            connection.close()
            raise
        return connection
