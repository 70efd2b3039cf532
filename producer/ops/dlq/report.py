"""What ``mailfleet dlq replay`` and ``purge`` did, as data and as one summary line."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# What tells two dead letters of one job apart: see DeadLetter.fingerprint.
Fingerprint = tuple[str, str, str, str, tuple[str, ...]]


@dataclass
class ReplayReport:
    """Ids per outcome; ``total`` is how many dead letters the replay looked at."""

    total: int
    dry_run: bool = False
    replayed: list[str] = field(default_factory=list)
    skipped_sent: list[str] = field(default_factory=list)
    skipped_suppressed: list[str] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    dropped_recipients: int = 0
    error: str | None = None
    # The letters a dry run would replay or skip, so a confirmed replay acts on just those.
    fingerprints: list[Fingerprint] = field(default_factory=list, repr=False)

    @property
    def skipped(self) -> int:
        return len(self.skipped_sent) + len(self.skipped_suppressed)

    @property
    def left(self) -> int:
        """Dead letters still in the queue (all of them after a dry run)."""
        removed = 0 if self.dry_run else len(self.replayed) + self.skipped
        return max(self.total - removed, 0)

    def summary(self) -> str:
        """``replayed 12, skipped 3 (already sent 2, suppressed 1), left 40``."""
        would = "would " if self.dry_run else ""
        parts = [
            f"{would}replay {len(self.replayed)}"
            if self.dry_run
            else f"replayed {len(self.replayed)}",
            f"{would}skip {self.skipped}" if self.dry_run else f"skipped {self.skipped}",
        ]
        parts[1] += (
            f" (already sent {len(self.skipped_sent)}, suppressed {len(self.skipped_suppressed)})"
        )
        if self.dropped_recipients:
            parts.append(f"recipients dropped {self.dropped_recipients}")
        if self.invalid:
            parts.append(f"invalid {len(self.invalid)} (not replayable, left in the queue)")
        if self.failed:
            parts.append(f"failed {len(self.failed)} (refused by the broker, left in the queue)")
        parts.append(f"left {self.left}")
        text = ", ".join(parts)
        return f"dry run: {text}; nothing moved" if self.dry_run else text

    def as_dict(self) -> dict[str, Any]:
        data = {**asdict(self), "skipped": self.skipped, "left": self.left}
        data.pop("fingerprints")
        return data


@dataclass
class PurgeReport:
    total: int
    dry_run: bool = False
    purged: list[str] = field(default_factory=list)
    # The letters themselves, so a confirmed purge deletes exactly the ones shown.
    fingerprints: list[Fingerprint] = field(default_factory=list, repr=False)

    @property
    def left(self) -> int:
        return max(self.total - (0 if self.dry_run else len(self.purged)), 0)

    def summary(self) -> str:
        if self.dry_run:
            return f"dry run: would purge {len(self.purged)}, left {self.left}; nothing removed"
        return f"purged {len(self.purged)}, left {self.left}"

    def as_dict(self) -> dict[str, Any]:
        data = {**asdict(self), "left": self.left}
        data.pop("fingerprints")
        return data
