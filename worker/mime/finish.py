"""The last steps of building a message, after ``build.py``: the one-click unsubscribe
headers, then the DKIM signatures over everything (``unsubscribe.py``, ``dkim.py``)."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from prometheus_client import Counter

from mailfleet.shared.addresses import domain_of
from mailfleet.shared.errors import ConfigError
from mailfleet.shared.job import EmailJob
from mailfleet.shared.settings import Settings
from mailfleet.shared.unsubscribe_token import UnsubscribeTokens
from mailfleet.worker.metrics import WorkerMetrics
from mailfleet.worker.mime.unsubscribe import ListUnsubscribe, Outcome

if TYPE_CHECKING:
    from mailfleet.worker.mime.dkim import DkimSigner
    from mailfleet.worker.mime.dkim_keys import DkimKey


class Finisher:
    def __init__(
        self,
        unsubscribe: ListUnsubscribe | None,
        signer: DkimSigner | None,
        unsigned: Counter,
        unsubscribe_skipped: Counter,
    ) -> None:
        self._unsubscribe = unsubscribe
        self._signer = signer
        self._unsigned = unsigned
        self._skipped = unsubscribe_skipped

    def finish(self, job: EmailJob, recipients: list[str], message: bytes) -> bytes:
        """``message`` (from ``build_message``) as it goes to ``recipients``."""
        if self._unsubscribe is not None:
            outcome, lines = self._unsubscribe.headers(job, recipients)
            if outcome is Outcome.SEVERAL_RECIPIENTS:
                self._skipped.inc()
            message = lines + message
        signed = self._signer.sign(message, domain_of(job.from_)) if self._signer else None
        if signed is None:
            self._unsigned.inc()
            return message
        return signed


def build_finisher(settings: Settings, metrics: WorkerMetrics) -> Finisher:
    """The finisher the settings describe: reads the DKIM keys (once, at start-up) and
    checks the unsubscribe settings; :class:`ConfigError` names the first problem."""
    keys = _keys(settings)
    return Finisher(
        unsubscribe_headers(settings),
        _signer(keys) if keys else None,
        metrics.dkim_unsigned,
        metrics.unsubscribe_skipped,
    )


def check_finishing(settings: Settings) -> None:
    """Raise the :class:`ConfigError` that :func:`build_finisher` would raise, if any."""
    _keys(settings)
    unsubscribe_headers(settings)


# dkimpy and cryptography are imported only when keys are configured: they took a sixth of
# a worker's start-up (about 35 ms) that a worker without DKIM never needs.
def _keys(settings: Settings) -> dict[str, list[DkimKey]]:
    if not settings.dkim_keys:
        return {}
    from mailfleet.worker.mime.dkim_keys import load_keys  # noqa: PLC0415

    return load_keys(settings.dkim_keys)


def _signer(keys: dict[str, list[DkimKey]]) -> DkimSigner:
    from mailfleet.worker.mime.dkim import DkimSigner  # noqa: PLC0415

    return DkimSigner(keys)


def unsubscribe_headers(settings: Settings) -> ListUnsubscribe | None:
    url = settings.unsubscribe_url
    if not url:
        return None
    if urlsplit(url).scheme not in ("https", "http") or not urlsplit(url).netloc:
        raise ConfigError(f"MAILFLEET_UNSUBSCRIBE_URL: {url!r} is not an http(s) URL")
    if settings.unsubscribe_secret is None:
        raise ConfigError(
            "MAILFLEET_UNSUBSCRIBE_SECRET: must be set with MAILFLEET_UNSUBSCRIBE_URL"
        )
    tokens = UnsubscribeTokens(settings.unsubscribe_secret)
    return ListUnsubscribe(url, tokens, settings.unsubscribe_mailto or None)
