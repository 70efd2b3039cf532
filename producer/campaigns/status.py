"""``mailfleet campaign status C``: what became of a campaign's jobs, from the counters the
worker keeps (``worker/campaign_counts.py``) and the set of published recipients."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import redis

from mailfleet.shared.errors import MailfleetError
from mailfleet.shared.names import Names
from mailfleet.shared.redis_client import redis_errors

_COUNTERS = ("sent", "deferred", "dead_lettered", "bounced", "suppressed")


@dataclass(frozen=True)
class CampaignStatus:
    campaign: str
    template: str
    published: int
    sent: int
    deferred: int  # times a job went to a delay tier (a retry, or a wait for its window)
    dead_lettered: int  # bounced and suppressed included
    bounced: int
    suppressed: int  # dead-lettered by the worker: on the list when its turn came
    skipped_suppressed: int  # not published: on the list at publish time
    skipped_duplicate: int

    @property
    def pending(self) -> int:
        """Published and neither sent nor dead-lettered yet (queued, or waiting in a tier)."""
        return max(self.published - self.sent - self.dead_lettered, 0)

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "pending": self.pending}, indent=2)

    def render(self) -> str:
        return "\n".join(
            [
                f"campaign {self.campaign} ({self.template})",
                f"  published      {self.published}",
                f"  sent           {self.sent}",
                f"  pending        {self.pending}",
                f"  deferred       {self.deferred}  (times a job waited in a delay tier)",
                f"  dead-lettered  {self.dead_lettered}  "
                f"(bounced {self.bounced}, suppressed {self.suppressed})",
                f"  skipped at publish: suppressed {self.skipped_suppressed}, "
                f"duplicate {self.skipped_duplicate}",
            ]
        )


def campaign_status(client: redis.Redis, names: Names, campaign: str) -> CampaignStatus:
    """The campaign's counts; MailfleetError if nothing is known of it (or it expired)."""
    pipeline = client.pipeline(transaction=False)
    pipeline.hgetall(names.campaign(campaign))
    pipeline.scard(names.campaign_published(campaign))
    with redis_errors("cannot read the campaign's counters"):
        raw, published = pipeline.execute()
    if not raw and not published:
        raise MailfleetError(f"no campaign {campaign} (never sent, or older than the sent TTL)")
    counts = {key.decode(): value.decode() for key, value in raw.items()}

    def number(name: str) -> int:
        return int(counts.get(name, 0))

    return CampaignStatus(
        campaign=campaign,
        template=counts.get("template", "?"),
        published=int(published),
        **{name: number(name) for name in (*_COUNTERS, "skipped_suppressed", "skipped_duplicate")},
    )
