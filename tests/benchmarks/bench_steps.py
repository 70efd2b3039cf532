"""What one message costs a worker, step by step, in one thread against the real servers.

Run from the repository root (RabbitMQ and Redis on localhost; smtp-sink when installed)::

    .venv/bin/python tests/benchmarks/bench_steps.py [--messages 3000]

Each step of the worker's per-message path runs ``--messages`` times on its own, with the
same calls the worker makes: pika consume + ``basic_ack`` (prefetch 20), pydantic parse of
the wire JSON, the Redis read before sending (sent-ledger ``HKEYS`` + suppression ``HMGET``
in one pipeline), ``build_message``, smtplib's ``sendmail`` over one reused connection (what
the worker's SMTP transport calls), and ``SentLedger.mark`` (one Redis pipeline).
It prints wall and CPU microseconds per message for each, and their sum: the single-thread
floor. A worker's
measured CPU per message (``bench_throughput.py``) above that sum is what its threads cost:
GIL hand-offs, wake-ups of the pika thread, context switches.
"""

from __future__ import annotations

import argparse
import smtplib
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import pika
import redis
from bench_throughput import HOST, Relay, make_jobs, start_relay

from mailfleet.shared.job import parse_job
from mailfleet.shared.sent_ledger import SentLedger
from mailfleet.shared.settings import Settings, load_settings
from mailfleet.worker.mime.build import build_message


@dataclass(frozen=True)
class Step:
    name: str
    wall_us: float
    cpu_us: float


def timed(name: str, count: int, action: Callable[[int], object]) -> Step:
    action(0)  # warm up outside the timing
    cpu = time.thread_time()
    started = time.perf_counter()
    for number in range(count):
        action(number)
    wall = time.perf_counter() - started
    cpu = time.thread_time() - cpu
    return Step(name, wall / count * 1e6, cpu / count * 1e6)


def consume_and_ack(settings: Settings, bodies: list[bytes]) -> Step:
    """Publish ``bodies`` to a private queue, then time consuming and acking them all."""
    connection = pika.BlockingConnection(pika.URLParameters(settings.amqp_url.get_secret_value()))
    try:
        channel = connection.channel()
        queue = f"{settings.namespace}.steps"
        channel.queue_declare(queue, exclusive=True, auto_delete=True)
        for body in bodies:
            channel.basic_publish("", queue, body)
        channel.basic_qos(prefetch_count=20)
        received = 0

        def on_message(
            channel: pika.adapters.blocking_connection.BlockingChannel,
            method: pika.spec.Basic.Deliver,
            properties: pika.BasicProperties,
            body: bytes,
        ) -> None:
            nonlocal received
            assert method.delivery_tag is not None
            channel.basic_ack(method.delivery_tag)
            received += 1

        channel.basic_consume(queue, on_message)
        deadline = time.monotonic() + 60
        cpu = time.thread_time()
        started = time.perf_counter()
        while received < len(bodies) and time.monotonic() < deadline:
            connection.process_data_events(time_limit=0.1)  # type: ignore[arg-type]
        wall = time.perf_counter() - started
        cpu = time.thread_time() - cpu
        channel.queue_delete(queue)
    finally:
        connection.close()
    count = max(received, 1)
    return Step("pika: deliver + basic_ack", wall / count * 1e6, cpu / count * 1e6)


def run(settings: Settings, relay: Relay, count: int) -> list[Step]:
    jobs = make_jobs(count)
    bodies = [job.to_wire() for job in jobs]
    steps = [consume_and_ack(settings, bodies)]
    steps.append(timed("JSON parse + validate (pydantic)", count, lambda n: parse_job(bodies[n])))
    client = redis.Redis.from_url(settings.redis_url.get_secret_value(), socket_timeout=5)
    ledger = SentLedger(client, settings.names, 3600)
    suppressed_key = settings.names.redis_key("suppressed")

    def redis_read(number: int) -> object:
        pipe = client.pipeline(transaction=False)
        pipe.hkeys(ledger.key(jobs[number].id))
        pipe.hmget(suppressed_key, [rcpt.lower() for rcpt in jobs[number].recipients()])
        return pipe.execute()

    steps.append(timed("Redis: sent ledger + suppression read", count, redis_read))
    steps.append(timed("MIME build (build_message)", count, lambda n: build_message(jobs[n])))
    messages = [build_message(job) for job in jobs]
    smtp = smtplib.SMTP(HOST, relay.port, timeout=10)
    try:
        smtp.ehlo()
        steps.append(
            timed(
                "SMTP: smtplib sendmail, reused connection",
                count,
                lambda n: smtp.sendmail("bench@mailfleet.test", jobs[n].recipients(), messages[n]),
            )
        )
    finally:
        smtp.quit()
    steps.append(
        timed(
            "Redis: mark sent (SentLedger.mark)",
            count,
            lambda n: ledger.mark(jobs[n].id, jobs[n].recipients()),
        )
    )
    keys = list(client.scan_iter(match=f"{settings.names.redis_prefix}*", count=1000))
    for start in range(0, len(keys), 1000):
        client.unlink(*keys[start : start + 1000])
    client.close()
    return steps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=3000, help="per step (3000)")
    parser.add_argument("--relay", choices=["auto", "smtp-sink", "aiosmtpd"], default="auto")
    args = parser.parse_args(argv)
    if args.messages < 1:
        parser.error("--messages must be at least 1")
    settings = load_settings(namespace=f"bench-{uuid.uuid4().hex[:8]}")
    relay = start_relay(args.relay)
    try:
        steps = run(settings, relay, args.messages)
    finally:
        relay.stop()
    print(f"\none thread, {args.messages} messages per step, relay {relay.label}")
    print(f"{'step':<40}{'wall µs/msg':>13}{'CPU µs/msg':>13}")
    for step in steps:
        print(f"{step.name:<40}{step.wall_us:>13.0f}{step.cpu_us:>13.0f}")
    wall = sum(step.wall_us for step in steps)
    cpu = sum(step.cpu_us for step in steps)
    print(f"{'sum: one thread, one message at a time':<40}{wall:>13.0f}{cpu:>13.0f}")
    print(f"\n=> at most {1e6 / cpu:.0f} msgs/s per fully busy core for these steps alone")
    return 0


if __name__ == "__main__":
    sys.exit(main())
