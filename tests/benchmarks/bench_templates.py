"""Rendering's cost on the worker's hot path: sends/s of literal jobs beside sends/s of the
same emails from a stored template, in one run, phases interleaved.

Run from the repository root (RabbitMQ and Redis on localhost)::

    .venv/bin/python tests/benchmarks/bench_templates.py --jobs 5000 --rounds 2

Each phase uses a fresh namespace, Postfix's ``smtp-sink`` (or the aiosmtpd sink) as the
relay and two ``mailfleet worker --burst`` processes, exactly as ``bench_throughput.py``
does. The literal phase publishes ``bench_throughput.make_jobs``; the templated phase the
same emails as jobs naming a stored template (pinned at publish) with the number, subject
line and lane as variables, so both phases send the same bytes. Phases alternate
(literal, templated, literal, ...) so that a change of load on the machine hits both.
Figures: the relay's first-to-last drain rate, and the workers' CPU seconds per 1 000 emails.
No figure is asserted; the exit status is 1 when an email went missing.
"""

from __future__ import annotations

import argparse
import os
import sys
import uuid
from statistics import median

from bench_throughput import clean_up, log_dir, make_jobs, publish, run_workers, start_relay
from bench_throughput import worker_env as throughput_env

from mailfleet.shared.job import EmailJob
from mailfleet.shared.redis_client import make_redis
from mailfleet.shared.settings import load_settings
from mailfleet.shared.template_ref import TemplateSource
from mailfleet.shared.templates.store import TemplateStore

# The emails of make_jobs, as a template.
TEMPLATE = TemplateSource(
    subject="Benchmark email {{ number }} of {{ count }}",
    text="Hello!\n\nThis is benchmark email {{ number }}, sent by mailfleet.\n",
    html="<p>Hello!</p><p>This is benchmark email <b>{{ number }}</b>.</p>",
)


def templated_jobs(count: int) -> list[EmailJob]:
    """make_jobs' emails, each naming the stored template with its own variables."""
    jobs = []
    for number, literal in enumerate(make_jobs(count)):
        data = literal.model_dump(by_alias=True, exclude_none=True, mode="json")
        for part in ("subject", "text", "html"):
            data.pop(part)
        data["template"] = {"name": "bench"}
        data["variables"] = {"number": number + 1, "count": count}
        jobs.append(EmailJob.model_validate(data))
    return jobs


def phase(jobs: int, workers: int, concurrency: int, *, templated: bool) -> tuple[float, float]:
    """(drain sends/s, worker CPU seconds per 1000 emails) of one phase."""
    namespace = f"bench-tpl-{uuid.uuid4().hex[:8]}"
    settings = load_settings(namespace=namespace)
    relay = start_relay("smtp-sink")
    try:
        if templated:
            client = make_redis(settings)
            TemplateStore(client, settings.names).put("bench", TEMPLATE)
            client.close()
        publish(settings, templated_jobs(jobs) if templated else make_jobs(jobs))
        env = throughput_env(namespace, relay.url, concurrency, None)
        with log_dir(None, "mailfleet-bench-templates-") as logs:
            run = run_workers(relay, count=workers, env=env, expected=jobs, wrap=[], logs=logs)
        if run.relay.received < jobs:
            raise SystemExit(f"only {run.relay.received} of {jobs} emails arrived")
        rate = run.relay.received / max(run.relay.span, 1e-9)
        return rate, run.worker_cpu * 1000 / jobs
    finally:
        relay.stop()
        clean_up(settings)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--jobs", type=int, default=5000, help="jobs per phase (5000)")
    parser.add_argument("--rounds", type=int, default=2, help="literal + templated pairs (2)")
    parser.add_argument("--workers", type=int, default=2, help="burst workers (2)")
    parser.add_argument("--concurrency", type=int, default=8, help="sender threads each (8)")
    args = parser.parse_args()
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"templates benchmark: {args.jobs} jobs a phase, load average {load}", flush=True)
    figures: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
    for _ in range(args.rounds):
        for templated in (False, True):
            rate, cpu = phase(args.jobs, args.workers, args.concurrency, templated=templated)
            figures[templated].append((rate, cpu))
            name = "templated" if templated else "literal"
            print(f"  {name:10} {rate:8.0f} sends/s  {cpu:6.2f} worker CPU s / 1000", flush=True)
    literal = median(rate for rate, _ in figures[False])
    rendered = median(rate for rate, _ in figures[True])
    literal_cpu = median(cpu for _, cpu in figures[False])
    rendered_cpu = median(cpu for _, cpu in figures[True])
    print(f"median literal    {literal:8.0f} sends/s  {literal_cpu:6.2f} CPU s / 1000")
    print(f"median templated  {rendered:8.0f} sends/s  {rendered_cpu:6.2f} CPU s / 1000")
    print(f"templated / literal: {rendered / literal:.2f} of the rate")
    return 0


if __name__ == "__main__":
    sys.exit(main())
