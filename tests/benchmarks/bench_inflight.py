"""What the in-flight marks (``worker/inflight.py``) add to a batch's Redis round trip.

Run from the repository root (Redis on localhost)::

    .venv/bin/python tests/benchmarks/bench_inflight.py [--batches 3000] [--batch 8]

The worker reads a batch's recipients in one pipelined call (``RecipientFilter.split_with``);
with the marks on, one more script rides in that call and reads the marks earlier
deliveries left (each email's own marks are written later, just before its data, in the
ledger's writes). This times the call both ways, on fresh job ids each time, alternating
the two to share the machine's noise, and prints wall and CPU microseconds per batch and
per message. Its keys live under a namespace of its own (``bench-inflight-<hex>``), removed
at the end.
"""

from __future__ import annotations

import argparse
import time
import uuid
from typing import Any

import redis

from mailfleet.shared.job import EmailJob
from mailfleet.shared.names import Names
from mailfleet.shared.recipients import RecipientFilter
from mailfleet.shared.sent_ledger import SentLedger
from mailfleet.shared.suppression import SuppressionList
from mailfleet.worker.inflight import InFlightMarks


class _Delivery:
    """The parts of a worker delivery the marks read."""

    def __init__(self, tag: int) -> None:
        self.delivery_tag = tag
        self.generation = 1
        self.attempt = 1
        self.headers: dict[str, Any] = {}


class _NoWrites:
    def forget_inflight(self, key: str, recipients: list[str]) -> None:
        return None

    def queue(self, commands: list[tuple[str | int, ...]]) -> None:
        return None

    def send_queued(self) -> None:
        return None


def _batch(size: int) -> list[tuple[Any, EmailJob]]:
    return [
        (
            _Delivery(number),
            EmailJob.model_validate(
                {
                    "id": uuid.uuid4().hex,
                    "from": "a@example.com",
                    "to": [f"rcpt{number}@example.org"],
                    "subject": "s",
                    "text": "t",
                }
            ),
        )
        for number in range(size)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--batches", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    client = redis.Redis.from_url(args.redis)
    names = Names(f"bench-inflight-{uuid.uuid4().hex[:8]}")
    recipients = RecipientFilter(
        client, SentLedger(client, names, 60), SuppressionList(client, names)
    )
    marks = InFlightMarks(client, names, _NoWrites())
    totals = {"without marks": [0.0, 0.0], "with marks": [0.0, 0.0]}
    try:
        for _ in range(args.batches):
            for label, total in totals.items():
                batch = _batch(args.batch)
                per_job = [job.recipients() for _, job in batch]
                calls = [marks.call(batch, per_job)] if label == "with marks" else []
                wall, cpu = time.perf_counter(), time.process_time()
                recipients.split_with(batch, per_job, calls)
                total[0] += time.perf_counter() - wall
                total[1] += time.process_time() - cpu
    finally:
        for key in client.scan_iter(match=f"{names.namespace}:*", count=1000):
            client.delete(key)
        client.close()
    messages = args.batches * args.batch
    for label, (wall, cpu) in totals.items():
        print(
            f"{label:>14}: {wall / args.batches * 1e6:7.1f} µs wall, "
            f"{cpu / args.batches * 1e6:7.1f} µs CPU per batch of {args.batch}; "
            f"{wall / messages * 1e6:6.1f} µs wall per message"
        )


if __name__ == "__main__":
    main()
