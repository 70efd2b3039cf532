"""structlog set-up: one event per line, JSON for machines or coloured console for humans."""

from __future__ import annotations

import logging
import sys
import threading
from typing import Literal, TextIO

import structlog


def configure_logging(
    log_format: Literal["json", "console"] = "console", level: str = "INFO"
) -> None:
    """Configure structlog once, at the entry point; events go to stderr."""
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if log_format == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=lambda *_: _LineWriter(sys.stderr),
        cache_logger_on_first_use=True,
    )
    # Library loggers (pika, kombu, aiosmtpd) speak through the standard library; keep them quiet.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)


class _LineWriter:
    """Writes each event and its newline in one call, so the processes of a group (which
    share stderr) never interleave their lines. Its lock is re-entrant: a signal handler
    that logs (``Worker.stop`` on SIGTERM) runs in the main thread, maybe in the middle of
    its own log call, and must not wait on itself (structlog's ``PrintLogger`` would)."""

    _lock = threading.RLock()

    def __init__(self, file: TextIO) -> None:
        self._file = file

    def msg(self, message: str) -> None:
        with self._lock:
            self._file.write(message + "\n")
            self._file.flush()

    debug = info = warning = warn = error = critical = exception = fatal = log = msg
