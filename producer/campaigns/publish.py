"""The second pass over a checked recipient list: publish a job per recipient, in batches.

Per batch, one Redis round trip asks which recipients are suppressed and which were already
confirmed by an earlier run of this campaign (``{ns}:campaign:<id>:published``, a set of
address digests); the rest are published with publisher confirms, and only once the broker
confirmed them are their digests added to the set. A run killed between the confirm and the
set publishes those again on the next run: the same job ids, so the worker's sent ledger
absorbs them and nobody gets a second email.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import redis

from mailfleet.producer.campaigns.jobs import Campaign, digest, job_id, job_wire
from mailfleet.producer.campaigns.rows import BadRow, Row
from mailfleet.producer.publisher import Producer, wire_message
from mailfleet.shared.redis_client import redis_errors
from mailfleet.shared.settings import Settings
from mailfleet.shared.suppression import SuppressionList

Progress = Callable[[int], None]  # told how many rows are done so far


@dataclass
class PublishResult:
    published: int = 0  # confirmed in this run
    suppressed: int = 0  # on the suppression list: not published
    duplicates: int = 0  # folded into an earlier row
    earlier: int = 0  # confirmed by an earlier run of the same campaign: not published again

    @property
    def skipped(self) -> int:
        return self.suppressed + self.duplicates


class CampaignPublisher:
    def __init__(
        self,
        settings: Settings,
        producer: Producer,
        client: redis.Redis,
        campaign: Campaign,
        batch_size: int,
    ) -> None:
        self._settings = settings
        self._producer = producer
        self._client = client
        self._campaign = campaign
        self._batch_size = batch_size
        self._names = settings.names
        self._suppressed_key = SuppressionList(client, settings.names).key
        self._published_key = settings.names.campaign_published(campaign.id)
        self._ttl = int(settings.sent_ttl)

    def run(
        self, rows: Iterable[Row | BadRow], duplicates: set[int], progress: Progress
    ) -> PublishResult:
        """Publish every row but the ``duplicates`` (row numbers), reporting progress."""
        result = PublishResult()
        batch: list[Row] = []
        done = 0
        for row in rows:
            if isinstance(row, BadRow):  # the check pass refuses a list with any
                continue
            done += 1
            if row.number in duplicates:
                result.duplicates += 1
                continue
            batch.append(row)
            if len(batch) >= self._batch_size:
                self._publish(batch, result)
                progress(done)
                batch = []
        if batch:
            self._publish(batch, result)
        progress(done)
        self._record_skips(result)
        return result

    def _publish(self, rows: list[Row], result: PublishResult) -> None:
        digests = [digest(row.email) for row in rows]
        pipeline = self._client.pipeline(transaction=False)
        pipeline.hmget(self._suppressed_key, [row.email.lower() for row in rows])
        pipeline.smismember(self._published_key, digests)
        with redis_errors("cannot read the suppression list"):
            suppressed, published = pipeline.execute()
        todo, todo_digests = [], []
        for row, key, on_list, before in zip(rows, digests, suppressed, published, strict=True):
            if on_list is not None:
                result.suppressed += 1
            elif before:
                result.earlier += 1
            else:
                todo.append(row)
                todo_digests.append(key)
        if not todo:
            return
        exchange, campaign = self._names.exchange, self._campaign
        lane = campaign.lane
        messages = [
            wire_message(job_wire(campaign, row), job_id(campaign, row), lane, exchange)
            for row in todo
        ]
        self._producer.publish_messages(messages)
        pipeline = self._client.pipeline(transaction=False)
        pipeline.sadd(self._published_key, *todo_digests)
        pipeline.expire(self._published_key, self._ttl)
        with redis_errors("cannot record the published jobs"):
            pipeline.execute()
        result.published += len(todo)

    def _record_skips(self, result: PublishResult) -> None:
        """What this (whole) run skipped, for ``mailfleet campaign status``."""
        key = self._names.campaign(self._campaign.id)
        pipeline = self._client.pipeline(transaction=False)
        pipeline.hset(
            key,
            mapping={
                "template": self._campaign.template.label(),
                "skipped_suppressed": result.suppressed,
                "skipped_duplicate": result.duplicates,
            },
        )
        pipeline.expire(key, self._ttl)
        with redis_errors("cannot record the campaign"):
            pipeline.execute()
