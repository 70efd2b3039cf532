"""``mailfleet worker --processes N``: N worker processes under one parent, as ``dramatiq -p N``.

The parent imports everything first and then forks each child (``child.py``), so a child
starts with warm imports, in well under Dramatiq's ~0.4 s. The parent opens no broker or
Redis connection a child could inherit; its only threads serve ``group_health.py``, which
writes nothing to stderr and holds no lock a child needs, and it forks from its main thread.

- SIGTERM / SIGINT: forwarded to every child as SIGTERM; each drains like a lone worker.
  Children still alive ``MAILFLEET_SHUTDOWN_GRACE`` plus ``KILL_MARGIN`` after the signal
  get SIGKILL (the broker requeues what they held). Exit 0 if every child exited 0.
- A child that dies unasked is logged and restarted, after a backoff that grows while it
  keeps dying young (a crash loop does not spin the CPU).
- ``--burst``: a child that exits 0 is done; the parent exits once all are.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import signal
import time
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from types import FrameType

import structlog

from mailfleet.shared.settings import Settings
from mailfleet.worker.processes.child import STOP_SIGNALS, run_child
from mailfleet.worker.processes.group_health import GroupHealth, Member

log = structlog.get_logger("mailfleet.worker")
KILL_MARGIN = 2.0  # beyond the grace: closing connections, flushing the last acks
FIRST_BACKOFF, MAX_BACKOFF = 0.5, 30.0
STABLE_AFTER = 10.0  # a child that ran this long before dying starts its backoff afresh
_FORK = multiprocessing.get_context("fork")
# A child the stop signal reached before its worker installed its handler ends by it: it
# held no message, so that is as clean as exit 0.
_CLEAN_EXITS = frozenset({0, -signal.SIGTERM, -signal.SIGINT})


@dataclass
class _Slot:
    index: int
    port: ctypes.c_int = field(default_factory=lambda: _FORK.RawValue(ctypes.c_int, 0))
    process: BaseProcess | None = None
    started_at: float = 0.0
    deaths: int = 0  # in a row, each soon after its start
    restart_at: float | None = None
    finished: bool = False

    def member(self) -> Member:
        process = self.process
        pid = process.pid if process is not None else None
        return Member(self.index, pid, int(self.port.value), self.finished)


class Supervisor:
    def __init__(self, settings: Settings, processes: int, *, burst: bool = False) -> None:
        self._settings = settings
        self._burst = burst
        self._slots = [_Slot(index) for index in range(processes)]
        self._stop_at: float | None = None
        self._health: GroupHealth | None = None

    def members(self) -> list[Member]:
        return [slot.member() for slot in self._slots]

    def run(self) -> int:
        if self._settings.metrics_port:  # bound before any fork: a busy port stops us here
            self._health = GroupHealth(self._settings.metrics_port, self.members).start()
            log.info("health_server_started", port=self._health.port)
        for signum in STOP_SIGNALS:
            signal.signal(signum, self._request_stop)
        try:
            for slot in self._slots:
                self._start(slot)
            log.info("worker_group_started", processes=len(self._slots), burst=self._burst)
            self._watch()
            return self._stop() if self._stop_at is not None else 0
        finally:
            if self._health is not None:
                self._health.stop()

    def _request_stop(self, signum: int, frame: FrameType | None) -> None:
        """Signal handler: no logging here (the main thread may be inside a log call)."""
        if self._stop_at is None:
            self._stop_at = time.monotonic()
        self._signal(self._slots, signal.SIGTERM)

    @staticmethod
    def _signal(slots: list[_Slot], signum: int) -> None:
        for slot in slots:
            process = slot.process
            if process is not None and process.pid is not None:
                with contextlib.suppress(ProcessLookupError):  # exited meanwhile
                    os.kill(process.pid, signum)

    def _start(self, slot: _Slot) -> None:
        slot.port.value, slot.restart_at = 0, None
        process = _FORK.Process(
            target=run_child,
            args=(self._settings, slot.index, slot.port),
            kwargs={"burst": self._burst, "parent_pid": os.getpid(), "inherited": self._health},
            name=f"mailfleet-worker-{slot.index}",
            daemon=True,  # should the parent itself fail, multiprocessing ends them at exit
        )
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            process.start()
            slot.process, slot.started_at = process, time.monotonic()
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        log.info("worker_process_started", process=slot.index, pid=process.pid)

    def _watch(self) -> None:
        """Restart children that die unasked, until a stop is asked or (burst) all finished."""
        while self._stop_at is None:
            if self._burst and all(slot.finished for slot in self._slots):
                log.info("worker_group_finished")
                return
            self._wait(0.25)
            now = time.monotonic()
            for slot in self._slots:
                if slot.restart_at is not None and now >= slot.restart_at and self._stop_at is None:
                    self._start(slot)

    def _wait(self, timeout: float) -> list[tuple[_Slot, int]]:
        """Wait up to ``timeout`` for children to exit; reap them and return their codes."""
        sentinels = [slot.process.sentinel for slot in self._slots if slot.process]
        if not sentinels:
            time.sleep(timeout)
            return []
        ended = set(wait(sentinels, timeout))
        return [
            (slot, self._reap(slot))
            for slot in self._slots
            if slot.process is not None and slot.process.sentinel in ended
        ]

    def _reap(self, slot: _Slot) -> int:
        process = slot.process
        assert process is not None
        process.join()
        code = process.exitcode if process.exitcode is not None else 1
        slot.process = None
        slot.port.value = 0
        if self._stop_at is not None:
            return code
        if self._burst and code == 0:
            slot.finished = True
            log.info("worker_process_finished", process=slot.index, pid=process.pid)
            return code
        now = time.monotonic()
        slot.deaths = slot.deaths + 1 if now - slot.started_at < STABLE_AFTER else 1
        delay = min(MAX_BACKOFF, FIRST_BACKOFF * 2 ** (slot.deaths - 1))
        slot.restart_at = now + delay
        log.error(
            "worker_process_died",
            process=slot.index,
            pid=process.pid,
            exit_code=code,
            signal=signal.Signals(-code).name if code < 0 else None,
            restart_in_s=delay,
        )
        return code

    def _stop(self) -> int:
        assert self._stop_at is not None
        log.info("worker_group_stopping", processes=sum(1 for s in self._slots if s.process))
        self._signal(self._slots, signal.SIGTERM)  # again: one may have been forked meanwhile
        deadline = self._stop_at + self._settings.shutdown_grace + KILL_MARGIN
        codes: dict[int, int] = {}
        while any(slot.process for slot in self._slots):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            codes.update((slot.index, code) for slot, code in self._wait(min(remaining, 0.25)))
        killed = [slot for slot in self._slots if slot.process]
        for slot in killed:
            log.warning("worker_process_killed", process=slot.index, pid=slot.member().pid)
            self._signal([slot], signal.SIGKILL)
            codes[slot.index] = self._reap(slot)
        clean = all(code in _CLEAN_EXITS for code in codes.values()) and not killed
        log.info("worker_group_stopped", exit_codes=codes, killed=len(killed))
        return 0 if clean else 1
