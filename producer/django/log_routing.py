"""Inside a Django project, mailfleet logs through the standard ``logging`` module under the
``mailfleet`` logger (``mailfleet.django``, ``mailfleet.producer``), so the project's
``LOGGING`` decides what is shown and where. A library must not write to its host's console:
structlog, left unconfigured, prints every event (debug ones too) to stdout.

Only an unconfigured structlog is set up here; a project that configured structlog itself
keeps its own set-up.
"""

from __future__ import annotations

import structlog


def route_logs_to_stdlib() -> None:
    """Send structlog's events to ``logging.getLogger(<the structlog logger's name>)``."""
    if structlog.is_configured():
        return
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.filter_by_level,
            structlog.processors.format_exc_info,
            structlog.stdlib.render_to_log_kwargs,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
