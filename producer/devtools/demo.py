"""``mailfleet demo``: a whole fleet on this machine, end to end.

With ``--own-servers``, or when the URLs are left at their defaults and nothing answers
there, it first brings up throwaway RabbitMQ and Redis (``own_servers.py``). It starts an
SMTP sink in-process, declares a fresh namespace, starts worker *processes*
(``mailfleet worker``: the producer never imports the worker), publishes sample emails
with confirms, shows progress, reports, and removes the namespace again.
"""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import time
import uuid

import redis
from pydantic import SecretStr

from mailfleet.producer.connection import open_connection
from mailfleet.producer.devtools.namespace import remove_namespace
from mailfleet.producer.devtools.own_servers import ServersMissing
from mailfleet.producer.devtools.own_servers import own_servers as servers_of_our_own
from mailfleet.producer.devtools.sink import SmtpSink
from mailfleet.producer.publisher import Producer
from mailfleet.producer.topology import queue_depths, topology_of
from mailfleet.shared.errors import BrokerUnavailable
from mailfleet.shared.job import EmailJob, Lane
from mailfleet.shared.redis_client import REDIS_DOWN
from mailfleet.shared.settings import Settings, redact_url

_DOMAINS = ["example.com", "example.org", "example.net", "mail.test"]
_TIMEOUT_PER_EMAIL = 0.05


def sample_jobs(count: int) -> list[EmailJob]:
    """``count`` varied jobs: mostly transactional, some bulk, a few with several recipients."""
    jobs = []
    for number in range(count):
        lane = Lane.BULK if number % 4 == 3 else Lane.TRANSACTIONAL
        to = [f"user{number}@{random.choice(_DOMAINS)}"]
        jobs.append(
            EmailJob.model_validate(
                {
                    "from": "Mailfleet Demo <demo@mailfleet.test>",
                    "to": to,
                    "subject": f"Demo email {number + 1} of {count}",
                    "text": f"Hello!\n\nThis is demo email {number + 1}, sent through mailfleet.\n",
                    "html": f"<p>Hello!</p><p>This is demo email <b>{number + 1}</b>.</p>",
                    "lane": lane.value,
                    "tags": {"campaign": "demo"},
                }
            )
        )
    return jobs


def _check_services(settings: Settings) -> str | None:
    """A message naming the service that cannot be reached, or None when both answer."""
    try:
        open_connection(settings, timeout=3.0, retries=0).release()
    except BrokerUnavailable as exc:
        return f"{exc}\n  start it with: rabbitmq-server -detached"
    url = settings.redis_url.get_secret_value()
    try:
        redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3).ping()
    except REDIS_DOWN as exc:
        return (
            f"cannot reach Redis at {redact_url(url)} (MAILFLEET_REDIS_URL): {exc}\n"
            "  start it with: redis-server --daemonize yes --bind 127.0.0.1 --port 6379 "
            '--save "" --appendonly no'
        )
    return None


def _open_dashboard(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    """``mailfleet dashboard`` on the demo's namespace, as a process of its own (the
    dashboard reads the worker's limits; the producer side does not import them)."""
    command = [sys.executable, "-m", "mailfleet.shared.cli", "dashboard", "--port", str(port)]
    process = subprocess.Popen(command, env=env)  # noqa: S603 (our own interpreter)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and process.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.1)
    return process


def _progress(sent: int, total: int, queued: int, rate: float) -> str:
    width = 30
    filled = int(width * sent / total) if total else width
    return (
        f"[{'#' * filled}{'.' * (width - filled)}] sent {sent}/{total}  "
        f"in queue {queued}  {rate:7.1f}/s"
    )


def _defaults(settings: Settings) -> bool:
    """Neither URL was set: the user asked for no particular server."""
    return not {"amqp_url", "redis_url"} & settings.model_fields_set


def run(
    settings: Settings,
    *,
    emails: int,
    workers: int,
    own_servers: bool = False,
    dashboard_port: int | None = None,
) -> int:
    """The demo on the configured servers, or on throwaway ones: always with
    ``own_servers``, and when the URLs are the defaults and nothing answers there."""
    problem = None if own_servers else _check_services(settings)
    if problem and not _defaults(settings):
        print(f"mailfleet demo: {problem}", file=sys.stderr)
        return 1
    if not (own_servers or problem):
        return _run(settings, emails, workers, dashboard_port)
    if problem:
        print("demo: nothing answers at the default URLs; starting throwaway servers")
    try:
        with servers_of_our_own() as urls:
            print(
                f"demo: RabbitMQ at {redact_url(urls.amqp_url)} and Redis at {urls.redis_url}, "
                f"of its own ({urls.how}), removed afterwards"
            )
            own = settings.model_copy(
                update={
                    "amqp_url": SecretStr(urls.amqp_url),
                    "redis_url": SecretStr(urls.redis_url),
                }
            )
            return _run(own, emails, workers, dashboard_port)
    except ServersMissing as exc:
        print(f"mailfleet demo: {exc}", file=sys.stderr)
        return 1


def _run(settings: Settings, emails: int, workers: int, dashboard_port: int | None) -> int:
    settings = settings.model_copy(update={"namespace": f"demo-{uuid.uuid4().hex[:8]}"})
    with SmtpSink(keep_messages=False, pipelining=True) as sink:
        env = {
            **os.environ,
            "MAILFLEET_AMQP_URL": settings.amqp_url.get_secret_value(),
            "MAILFLEET_REDIS_URL": settings.redis_url.get_secret_value(),
            "MAILFLEET_NAMESPACE": settings.namespace,
            "MAILFLEET_SMTP_RELAYS": sink.url,
            "MAILFLEET_METRICS_PORT": "0",
            "MAILFLEET_LOG_LEVEL": "WARNING",
        }
        print(
            f"demo: namespace {settings.namespace}, SMTP sink on {sink.url}, "
            f"{workers} worker process(es), {emails} emails"
        )
        producer = Producer(settings)
        processes = [
            subprocess.Popen([sys.executable, "-m", "mailfleet.shared.cli", "worker"], env=env)
            for _ in range(workers)
        ]
        if dashboard_port is not None:
            processes.append(_open_dashboard(env, dashboard_port))
        try:
            return _drive(settings, producer, sink, emails)
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                try:
                    process.wait(timeout=settings.shutdown_grace + 5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            try:
                producer.close()
            finally:
                remove_namespace(settings)


def _drive(settings: Settings, producer: Producer, sink: SmtpSink, emails: int) -> int:
    started = time.monotonic()
    producer.publish_many(sample_jobs(emails))
    published_s = time.monotonic() - started
    print(
        f"published {emails} jobs with publisher confirms in {published_s:.2f}s "
        f"({emails / published_s:.0f}/s)"
    )
    connection = open_connection(settings)
    lanes = [queue.name for queue in topology_of(settings).queues][:2]
    deadline = time.monotonic() + 30 + emails * _TIMEOUT_PER_EMAIL
    try:
        while sink.count < emails and time.monotonic() < deadline:
            time.sleep(0.5)
            depths = queue_depths(connection, topology_of(settings))
            queued = sum(depths[name][0] for name in lanes)
            elapsed = time.monotonic() - started
            line = _progress(sink.count, emails, queued, sink.count / elapsed)
            print(
                f"\r{line}" if sys.stdout.isatty() else line,
                end="" if sys.stdout.isatty() else "\n",
                flush=True,
            )
    finally:
        connection.release()
    elapsed = time.monotonic() - started
    print()
    delivered = sink.count
    print(
        f"report: published {emails}, delivered {delivered} in {elapsed:.1f}s "
        f"({delivered / elapsed:.0f}/s end to end), missing {max(0, emails - delivered)}, "
        f"extra {max(0, delivered - emails)}"
    )
    return 0 if delivered == emails else 1
