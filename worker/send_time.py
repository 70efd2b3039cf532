"""When a job may go out: not before its ``not_before``, and inside its send window (the
job's own, else its lane's ``MAILFLEET_LANE_WINDOWS`` default). Pure; the pipeline defers a
job that must wait to a delay tier, without using an attempt."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from mailfleet.shared.job import EmailJob, Lane
from mailfleet.shared.send_window import SendWindow


class SendTime:
    def __init__(self, lane_windows: Mapping[Lane, SendWindow] | None = None) -> None:
        self._lane_windows = dict(lane_windows or {})

    def window_of(self, job: EmailJob) -> SendWindow | None:
        return job.window or self._lane_windows.get(job.lane)

    def wait(self, job: EmailJob, now: datetime) -> float:
        """Seconds ``job`` must still wait at ``now`` (an aware datetime); 0 if it may go."""
        wait = 0.0
        if job.not_before is not None:
            wait = (job.not_before - now).total_seconds()
        window = self.window_of(job)
        if window is not None:
            # The window is judged at the moment not_before lets the job go.
            ready = now if wait <= 0 else job.not_before or now
            wait = max(wait, (window.opens_at(ready) - now).total_seconds())
        return max(wait, 0.0)
