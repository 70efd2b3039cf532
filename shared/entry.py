"""The ``mailfleet`` console command, with the garbage collector paused during start-up.

Start-up imports allocate many long-lived objects (pydantic models, redis-py, pika); the
collector would walk them again and again for nothing, which cost about a sixth of a
worker's start-up. :func:`mailfleet.shared.cli.start_up_done` resumes it.
"""

from __future__ import annotations

import gc


def main() -> int:
    gc.disable()
    from mailfleet.shared.cli import main as run  # noqa: PLC0415 (imported with gc paused)

    return run()
