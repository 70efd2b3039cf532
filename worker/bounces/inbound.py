"""``mailfleet inbound``: an SMTP listener (aiosmtpd) for the bounce domain.

It accepts mail only for addresses of ``MAILFLEET_BOUNCE_DOMAIN`` and hands each message
to the :class:`~mailfleet.worker.bounces.process.BounceProcessor`, one at a time on a
thread of its own (the processor's broker connection belongs to one thread). A message it
processed or deliberately ignored is answered 250, so the sending MTA forgets it; when Redis
or the broker fails, 451, so the MTA keeps it and tries again. No input stops the listener.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import structlog
from aiosmtpd.controller import Controller

from mailfleet.shared.addresses import domain_of
from mailfleet.shared.errors import MailfleetError
from mailfleet.worker.bounces.process import BounceProcessor

log = structlog.get_logger("mailfleet.bounces")
_LARGEST = 32 * 1024 * 1024  # aiosmtpd's own default limit


class _Handler:
    def __init__(self, processor: BounceProcessor, domain: str) -> None:
        self._processor = processor
        self._domain = domain.lower()
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bounces")

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if domain_of(address).lower() != self._domain:
            log.info("inbound_refused", domain=domain_of(address), reason="not the bounce domain")
            return f"550 5.1.1 only mail for @{self._domain} is accepted here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = envelope.original_content or envelope.content
        data = raw if isinstance(raw, bytes) else str(raw).encode("utf-8", "surrogateescape")
        loop = asyncio.get_running_loop()
        lines = []
        for rcpt in envelope.rcpt_tos:
            try:
                outcome = await loop.run_in_executor(
                    self._thread, self._processor.process, data, rcpt
                )
            except MailfleetError as exc:
                log.warning("inbound_deferred", error=str(exc))
                return "451 4.3.0 cannot process the report now, try again later"
            except Exception:
                log.exception("inbound_failed")
                return "451 4.3.0 processing failed, try again later"
            log.info("inbound_message", outcome=outcome.status, line=outcome.line[:300])
            lines.append(outcome.status)
        return f"250 OK: {', '.join(lines) or 'nothing to do'}"

    def close(self) -> None:
        self._thread.shutdown(wait=True)


class InboundServer:
    """The listener; a context manager that starts and stops it."""

    def __init__(
        self, processor: BounceProcessor, domain: str, host: str, port: int, max_bytes: int
    ) -> None:
        self._handler = _Handler(processor, domain)
        # A message over the processor's limit still arrives, to be logged and ignored;
        # one far over it is refused by aiosmtpd (552) before it fills memory.
        self._controller = Controller(
            self._handler,
            hostname=host,
            port=port,
            data_size_limit=max(max_bytes * 4, _LARGEST),
            decode_data=False,
        )

    @property
    def port(self) -> int:
        return int(self._controller.port)

    def __enter__(self) -> InboundServer:
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()
        self._handler.close()
