"""The Dramatiq side of ``bench_peers.py``: a broker, one actor, and a publisher.

Workers: ``python -m dramatiq peers_dramatiq_app --path tests/benchmarks -p 2 -t 8``.
Publisher: ``python tests/benchmarks/peers_dramatiq_app.py publish JOBS.jsonl`` sends one
message per line (the same JSON jobs ``mailfleet publish`` reads) and prints ``published N``.

Configured by the environment, which ``bench_peers.py`` sets for each round:

- ``BENCH_PEERS_AMQP_URL``: the broker (default ``amqp://guest:guest@127.0.0.1:5672/%2F``);
- ``BENCH_PEERS_QUEUE``: the queue (Dramatiq adds ``.DQ`` and ``.XQ``), fresh per round;
- ``BENCH_PEERS_SMTP_HOST`` / ``BENCH_PEERS_SMTP_PORT``: the relay;
- ``BENCH_PEERS_CONFIRMS=1``: ``RabbitmqBroker(confirm_delivery=True)``; Dramatiq's default
  is without publisher confirms.

The actor does what a Dramatiq user would write: build the message with ``email.mime`` and
send it with ``smtplib`` over one connection per worker thread, kept open between messages
and opened again once when the relay dropped it. Anything else raises, and Dramatiq's
Retries middleware retries the message with its default back-off.
"""

from __future__ import annotations

import contextlib
import json
import os
import smtplib
import sys
import threading
from email.mime.text import MIMEText
from email.policy import compat32
from email.utils import formatdate
from pathlib import Path
from typing import Any

import dramatiq
from dramatiq.brokers.rabbitmq import RabbitmqBroker

# The header the relay's ledger reads ids from: the one mailfleet's worker writes, so that
# one ledger serves both contenders.
from mailfleet.shared.names import JOB_ID_HEADER

QUEUE = os.environ.get("BENCH_PEERS_QUEUE", "bench_peers")
SMTP_HOST = os.environ.get("BENCH_PEERS_SMTP_HOST", "127.0.0.1")
SMTP_PORT = int(os.environ.get("BENCH_PEERS_SMTP_PORT", "2525"))
_CRLF = compat32.clone(linesep="\r\n")  # smtplib sends bytes as they are: CRLF line ends

broker = RabbitmqBroker(
    url=os.environ.get("BENCH_PEERS_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F"),
    confirm_delivery=os.environ.get("BENCH_PEERS_CONFIRMS") == "1",
)
dramatiq.set_broker(broker)

_local = threading.local()


def build(job: dict[str, Any]) -> bytes:
    """The job's email, plain text, with ``email.mime``."""
    message = MIMEText(job["text"], "plain", "us-ascii" if job["text"].isascii() else "utf-8")
    message["From"] = job["from"]
    message["To"] = ", ".join(job["to"])
    message["Subject"] = job["subject"]
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = f"<{job['id']}@bench.peers>"
    message[JOB_ID_HEADER] = job["id"]
    return message.as_bytes(policy=_CRLF)


def _connection() -> smtplib.SMTP:
    connection: smtplib.SMTP | None = getattr(_local, "smtp", None)
    if connection is None:
        connection = smtplib.SMTP(SMTP_HOST, SMTP_PORT, timeout=30)
        connection.ehlo()
        _local.smtp = connection
    return connection


def _drop() -> None:
    connection: smtplib.SMTP | None = getattr(_local, "smtp", None)
    _local.smtp = None
    if connection is not None:
        with contextlib.suppress(OSError):
            connection.close()


@dramatiq.actor(actor_name="send_email", queue_name=QUEUE)
def send_email(job: dict[str, Any]) -> None:
    data = build(job)
    try:
        _connection().sendmail(job["from"], job["to"], data)
    except smtplib.SMTPServerDisconnected:
        _resend(job, data)
    except smtplib.SMTPException:  # a reply refused it: Dramatiq retries the message
        raise
    except OSError:  # SMTPException is an OSError too, hence this order
        _resend(job, data)


def _resend(job: dict[str, Any], data: bytes) -> None:
    """The kept-open connection went stale: once more, on a new one."""
    _drop()
    _connection().sendmail(job["from"], job["to"], data)


def publish(path: Path) -> int:
    count = 0
    with path.open("rb") as lines:
        for line in lines:
            if line.strip():
                send_email.send(json.loads(line))
                count += 1
    broker.close()
    return count


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "publish":
        sys.exit("usage: peers_dramatiq_app.py publish JOBS.jsonl")
    print(f"published {publish(Path(sys.argv[2]))}")
