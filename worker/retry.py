"""The retry policy, whole: when a failed send comes back, after how long, and when mailfleet
gives up. Pure policy, no I/O; ``settle.py`` carries its decisions out.

- A transient failure (4xx, a timeout, a relay that is down: ``smtp/replies.py`` classifies
  the reply) is retried through a delay tier: attempt N waits the Nth of
  ``MAILFLEET_RETRY_DELAYS``, every later attempt the last one.
- It is given up on, and dead-lettered as ``exhausted``, once ``MAILFLEET_MAX_ATTEMPTS``
  attempts failed or the job is older than ``MAILFLEET_MAX_AGE``.
- A message handed out ``MAILFLEET_DELIVERY_LIMIT`` times without being settled keeps taking
  workers down with it: it is dead-lettered as ``crashed`` before the queue's own delivery
  limit would drop it without mailfleet's headers.
- A relay that fails is first retried once on another healthy relay, within the attempt
  (``dispatch.py``); a permanent reply (5xx) is never retried.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mailfleet.shared.addresses import domain_of
from mailfleet.shared.settings import Settings
from mailfleet.worker.smtp.replies import Outcome, SmtpReply, classify


@dataclass(frozen=True)
class RetryPolicy:
    delays: list[float]  # the delay tiers, seconds
    max_attempts: int
    max_age: float  # seconds since the job was first published
    crash_limit: int  # deliveries without a settle before it counts as crashing workers

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        return cls(
            delays=list(settings.retry_delays),
            max_attempts=settings.max_attempts,
            max_age=settings.max_age,
            crash_limit=settings.delivery_limit,
        )

    def gives_up(self, attempt: int, published_at: float | None, now: float) -> bool:
        """Whether a transient failure of attempt ``attempt`` ends the job (``exhausted``)
        rather than being retried; ``published_at`` and ``now`` are Unix times."""
        too_old = published_at is not None and now - published_at > self.max_age
        return attempt >= self.max_attempts or too_old

    def delay_after(self, attempt: int) -> float:
        """How long to wait before the attempt after ``attempt``."""
        return retry_delay(attempt, self.delays)

    def crashed_out(self, delivery_count: int) -> bool:
        """Whether a message handed out ``delivery_count`` times before is crashing workers."""
        return delivery_count >= self.crash_limit

    def wait_tier(self, seconds: float) -> float:
        """The tier that holds a job not due for ``seconds`` (no attempt is used)."""
        return wait_tier(seconds, self.delays)


def retry_delay(attempt: int, delays: list[float]) -> float:
    """Delay before attempt ``attempt + 1``: the ``attempt``-th tier, the last tier once past it."""
    ordered = sorted(delays)
    return ordered[min(max(attempt, 1), len(ordered)) - 1]


def wait_tier(seconds: float, delays: list[float]) -> float:
    """The longest tier not longer than ``seconds`` (the shortest if all are longer)."""
    ordered = sorted(delays)
    fitting = [delay for delay in ordered if delay <= seconds]
    return fitting[-1] if fitting else ordered[0]


@dataclass
class Refused:
    """A send's refused recipients, sorted by what happens to them next."""

    retry: dict[str, SmtpReply] = field(default_factory=dict)  # transient: a delay tier
    permanent: dict[str, SmtpReply] = field(default_factory=dict)  # 5xx: the dead letters
    bad_mailboxes: list[str] = field(default_factory=list)  # to the suppression list too
    throttled: set[str] = field(default_factory=set)  # domains to slow down


def sort_refused(refused: dict[str, SmtpReply]) -> Refused:
    """Each refused recipient, by its reply's class (``smtp/replies.py``)."""
    sorted_ = Refused()
    for rcpt, reply in refused.items():
        verdict = classify(reply)
        target = sorted_.permanent if verdict.outcome is Outcome.PERMANENT else sorted_.retry
        target[rcpt] = reply
        if verdict.bad_mailbox:
            sorted_.bad_mailboxes.append(rcpt)
        if verdict.outcome is Outcome.THROTTLED:
            sorted_.throttled.add(domain_of(rcpt))
    return sorted_
