"""Bounces and complaints on real servers: VERP return paths from the real worker, reports
taken in over SMTP by the inbound listener and by ``mailfleet bounce``, the report counters,
and the complaint guard."""

from __future__ import annotations

import json
import re
import signal
import smtplib
import subprocess
from collections.abc import Iterator

import httpx
import pytest
import redis
from kombu.connection import Connection
from pydantic import SecretStr

from mailfleet.producer.devtools.sink import ReceivedMessage, SmtpSink
from mailfleet.producer.publisher import Producer
from mailfleet.shared.events import EventKind
from mailfleet.shared.settings import Settings
from mailfleet.shared.suppression import SuppressionList
from mailfleet.worker.bounces.inbound import InboundServer
from mailfleet.worker.bounces.process import BounceProcessor
from mailfleet.worker.broker.event_publisher import EventPublisher
from tests.integration.helpers import (
    WorkerThread,
    mailfleet_command,
    make_job,
    settings_env,
    take_events,
    wait_until,
)
from tests.integration.reports import complaint, dsn, free_port, ref_of, returned_headers

DOMAIN = "bounces.example.net"


@pytest.fixture
def verp_settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"bounce_domain": DOMAIN, "bounce_secret": SecretStr("test-secret-0123456789")}
    )


@pytest.fixture
def inbound(verp_settings: Settings, redis_client: redis.Redis) -> Iterator[InboundServer]:
    verp = verp_settings.verp
    assert verp is not None
    events = EventPublisher(verp_settings)
    processor = BounceProcessor(verp_settings, verp, redis_client, events)
    server = InboundServer(
        processor, DOMAIN, "127.0.0.1", free_port(), verp_settings.inbound_max_bytes
    )
    with server:
        yield server
    events.close()


def _send(settings: Settings, producer: Producer, *jobs: int, **fields: object) -> None:
    for number in jobs:
        producer.publish(make_job(number, **fields))
    assert 0 == WorkerThread(settings, burst=True).join(timeout=60)


def _by_rcpt(sink: SmtpSink) -> dict[str, ReceivedMessage]:
    return {message.rcpt_tos[0]: message for message in sink.messages}


def _deliver(server: InboundServer, rcpt: str, raw: bytes) -> tuple[int, bytes]:
    """Send ``raw`` to the listener as an MTA would; its reply to the message."""
    with smtplib.SMTP("127.0.0.1", server.port, timeout=30) as client:
        client.ehlo("mx.example.net")
        client.mail("<>")
        code, _ = client.rcpt(rcpt)
        assert 250 == code
        client.putcmd("data")
        code, _ = client.getreply()
        assert 354 == code
        client.send(re.sub(rb"(?m)^\.", b"..", raw) + b"\r\n.\r\n")  # dot-stuffed
        return client.getreply()


def _suppressed(client: redis.Redis, settings: Settings) -> dict[str, str]:
    entries = SuppressionList(client, settings.names).entries()
    return {entry.address: entry.reason for entry in entries}


def _mailfleet(settings: Settings, *args: str) -> str:
    """What ``mailfleet ARGS`` prints, run as a command with ``settings``; it must exit 0."""
    result = subprocess.run(
        mailfleet_command(*args),
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout


def _report(settings: Settings, *args: str) -> dict[str, object]:
    report: dict[str, object] = json.loads(_mailfleet(settings, "report", "--json", *args))
    return report


def test_a_dsn_for_a_verp_token_suppresses_exactly_that_recipient(
    verp_settings: Settings,
    producer: Producer,
    smtp_server: SmtpSink,
    inbound: InboundServer,
    redis_client: redis.Redis,
    amqp_connection: Connection,
    events_queue: str,
) -> None:
    """Each email has its own VERP sender and ref header; a DSN to that sender over SMTP
    suppresses that recipient only, with the status and diagnostic, and a new job for them
    is skipped."""
    _send(verp_settings, producer, 1, 2, 3)
    sent = _by_rcpt(smtp_server)
    tokens = {rcpt: ref_of(message) for rcpt, message in sent.items()}
    assert 3 == len(set(tokens.values()))
    for rcpt, message in sent.items():
        assert f"bounces+{tokens[rcpt]}@{DOMAIN}" == message.mail_from
        assert len(message.mail_from.split("@")[0]) <= 64
    bounced = "rcpt2@example.org"
    report = dsn(bounced, returned_headers(sent[bounced]))

    code, reply = _deliver(inbound, f"bounces+{tokens[bounced]}@{DOMAIN}", report)

    assert (250, b"OK: processed") == (code, reply)
    suppressed = _suppressed(redis_client, verp_settings)
    assert [bounced] == list(suppressed)
    assert "hard bounce 5.1.1" in suppressed[bounced]
    assert "User unknown" in suppressed[bounced]
    events = [event for _, event in take_events(amqp_connection, events_queue)]
    bounces = [event for event in events if event.event is EventKind.BOUNCED]
    assert [("job-2", bounced)] == [(event.job_id, event.recipient) for event in bounces]
    count = smtp_server.count
    _send(verp_settings, producer, 2, id="job-2-again")
    assert count == smtp_server.count  # skipped: on the suppression list


def test_a_multi_recipient_job_gets_one_transaction_per_recipient(
    verp_settings: Settings, producer: Producer, smtp_server: SmtpSink
) -> None:
    """With VERP, every recipient has its own return path, so each is its own SMTP transaction."""
    to = ["ann@example.org", "bob@example.org", "cy@example.org"]
    _send(verp_settings, producer, 1, to=to)
    assert sorted(to) == sorted(message.rcpt_tos[0] for message in smtp_server.messages)
    assert all(1 == len(message.rcpt_tos) for message in smtp_server.messages)
    assert 3 == len({message.mail_from for message in smtp_server.messages})


def test_a_forged_or_unknown_token_changes_nothing(
    verp_settings: Settings,
    producer: Producer,
    smtp_server: SmtpSink,
    inbound: InboundServer,
    redis_client: redis.Redis,
) -> None:
    """An altered token and a well-formed token for no email of ours are ignored and counted."""
    _send(verp_settings, producer, 1)
    message = smtp_server.messages[0]
    token = ref_of(message)
    altered = ("b" if token[0] != "b" else "c") + token[1:]
    verp = verp_settings.verp
    assert verp is not None
    unknown = verp.token("never-sent", "rcpt1@example.org")
    report = dsn("rcpt1@example.org", returned_headers(message).replace(token, altered))
    for fake in (altered, unknown):
        code, reply = _deliver(inbound, f"bounces+{fake}@{DOMAIN}", report)
        assert (250, b"OK: ignored") == (code, reply)
    assert {} == _suppressed(redis_client, verp_settings)
    ignored = _report(verp_settings)["ignored"]
    assert {"forged token": 1, "unknown token": 1} == ignored


def test_a_redacted_complaint_is_matched_by_the_ref_header(
    verp_settings: Settings,
    producer: Producer,
    smtp_server: SmtpSink,
    redis_client: redis.Redis,
    amqp_connection: Connection,
    events_queue: str,
) -> None:
    """An ARF report without the recipient, through ``mailfleet bounce``, suppresses the
    recipient its X-Mailfleet-Ref names; the same report again changes nothing."""
    _send(verp_settings, producer, 1, 2)
    message = _by_rcpt(smtp_server)["rcpt1@example.org"]
    headers = returned_headers(message).replace("rcpt1@example.org", "redacted@example.org")
    report = complaint(headers)
    outputs = []
    for _ in range(2):
        result = subprocess.run(
            mailfleet_command("bounce", "-"),
            input=report,
            env=settings_env(verp_settings),
            capture_output=True,
            timeout=60,
            check=False,
        )
        assert 0 == result.returncode, result.stderr
        outputs.append(result.stdout.decode().strip())
    assert outputs[0].startswith("processed: complaint for job job-1")
    assert outputs[1].endswith("already processed")
    assert ["rcpt1@example.org"] == list(_suppressed(redis_client, verp_settings))
    events = [event for _, event in take_events(amqp_connection, events_queue)]
    kinds = [event.event for event in events if event.job_id == "job-1"]
    assert 1 == kinds.count(EventKind.COMPLAINED)
    report_rows = _report(verp_settings, "--by", "lane")["rows"]
    assert isinstance(report_rows, list)
    assert [("transactional", 2, 1)] == [
        (row["key"], row["sent"], row["complained"]) for row in report_rows
    ]


def test_bounce_exit_codes(verp_settings: Settings, tmp_path: pytest.TempPathFactory) -> None:
    """Unreadable input exits 2, an ignored message 0 with one line saying so."""
    env = settings_env(verp_settings)
    missing = subprocess.run(
        mailfleet_command("bounce", "/nonexistent/report.eml"),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert 2 == missing.returncode
    assert "cannot read /nonexistent/report.eml" in missing.stderr
    ignored = subprocess.run(
        mailfleet_command("bounce", "-"),
        input=b"From: someone@example.org\r\nSubject: hello\r\n\r\nHi!\r\n",
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert (0, b"ignored: not a report\n") == (ignored.returncode, ignored.stdout)


def test_the_report_counts_what_happened_exactly(
    verp_settings: Settings,
    producer: Producer,
    smtp_server: SmtpSink,
    inbound: InboundServer,
    replies: object,
) -> None:
    """Sent, deferred, hard and soft bounces, dead letters and suppressed skips, counted once
    each, also when the same DSN comes twice."""
    from tests.integration.relays import ScriptedReplies

    assert isinstance(replies, ScriptedReplies)
    replies.script("rcpt2@example.org", "451 4.3.0 try later", None)
    replies.script("rcpt3@example.org", "550 5.1.1 no such user")
    _send(verp_settings, producer, 1, 2, 3, 4)
    sent = _by_rcpt(smtp_server)
    hard = dsn("rcpt1@example.org", returned_headers(sent["rcpt1@example.org"]))
    soft = dsn(
        "rcpt4@example.org",
        returned_headers(sent["rcpt4@example.org"]),
        status="4.4.1",
        action="delayed",
    )
    for rcpt, raw in (("rcpt1", hard), ("rcpt1", hard), ("rcpt4", soft)):
        token = ref_of(sent[f"{rcpt}@example.org"])
        assert 250 == _deliver(inbound, f"bounces+{token}@{DOMAIN}", raw)[0]
    _send(verp_settings, producer, 1, id="job-1-again")  # rcpt1 is suppressed now

    rows = _report(verp_settings, "--by", "sender")["rows"]

    assert isinstance(rows, list)
    assert 1 == len(rows)
    counts = {key: value for key, value in rows[0].items() if isinstance(value, int)}
    assert {
        "sent": 3,
        "deferred": 1,
        "hard_bounced": 2,  # rcpt3 by the relay, rcpt1 by its DSN
        "soft_bounced": 1,
        "complained": 0,
        "dead_lettered": 1,
        "suppressed": 1,
    } == counts
    assert "example.com" == rows[0]["key"]
    assert rows[0]["flags"]  # 2 hard bounces in 3 sends is far over 2 %


def test_complaints_over_the_threshold_pause_bulk_mail_of_that_sender_only(
    verp_settings: Settings,
    producer: Producer,
    smtp_server: SmtpSink,
    redis_client: redis.Redis,
) -> None:
    """Two complaints in ten sends pause bulk mail from news.example.com; its transactional
    mail and other senders' bulk mail still go; ``resume`` lets the held mail out."""
    settings = verp_settings.model_copy(update={"complaint_pause": 0.1, "complaint_min_sends": 10})
    news = "News <news@news.example.com>"
    _send(settings, producer, *range(1, 11), **{"from": news, "lane": "bulk"})
    verp = settings.verp
    assert verp is not None
    processor = BounceProcessor(settings, verp, redis_client, None)
    sent = _by_rcpt(smtp_server)
    for number in (1, 2):
        message = sent[f"rcpt{number}@example.org"]
        assert "processed" == processor.process(complaint(returned_headers(message))).status
    assert ["news.example.com"] == [
        pause.domain for pause in processor_pauses(settings, redis_client)
    ]

    worker = WorkerThread(settings)
    try:
        producer.publish(make_job(11, **{"from": news, "lane": "bulk"}))
        producer.publish(make_job(12, **{"from": news, "lane": "transactional"}))
        producer.publish(make_job(13, **{"from": "Shop <shop@shop.example.com>", "lane": "bulk"}))
        assert wait_until(lambda: {"job-12", "job-13"} <= _job_ids(smtp_server), timeout=30)
        assert "job-11" not in _job_ids(smtp_server)
        stats = json.loads(_mailfleet(settings, "stats", "--json"))
        assert ["news.example.com"] == stats["bulk_paused"]
        resumed = _mailfleet(settings, "resume", "news.example.com")
        assert "resumed bulk mail from news.example.com\n" == resumed
        assert wait_until(lambda: "job-11" in _job_ids(smtp_server), timeout=30)
    finally:
        worker.stop()


def processor_pauses(settings: Settings, client: redis.Redis) -> list[object]:
    from mailfleet.shared.complaint_guard import ComplaintGuard
    from mailfleet.shared.reports import ReportKeys

    guard = ComplaintGuard(
        client, ReportKeys(settings.names), settings.complaint_pause, settings.complaint_min_sends
    )
    return list(guard.pauses())


def _job_ids(sink: SmtpSink) -> set[str]:
    return {message.job_id or "" for message in sink.messages}


def test_bad_input_never_stops_the_listener(
    verp_settings: Settings,
    producer: Producer,
    smtp_server: SmtpSink,
    inbound: InboundServer,
    redis_client: redis.Redis,
) -> None:
    """A message over the size limit, broken MIME, a DSN for an unknown token and non-UTF-8
    headers are each answered and ignored; the DSN after them is processed."""
    _send(verp_settings, producer, 1)
    message = smtp_server.messages[0]
    token = ref_of(message)
    verp = verp_settings.verp
    assert verp is not None
    address = f"bounces+{token}@{DOMAIN}"
    huge = b"Subject: big\r\n\r\n" + (b"x" * 76 + b"\r\n") * 270_000  # 20.5 MB
    broken = b"Content-Type: multipart/report; boundary=\r\n\r\n--\r\n\xff\xfe garbage"
    unknown = dsn("rcpt1@example.org", "Subject: x")
    latin1 = b"From: J\xfcrgen <j@example.org>\r\nSubject: caf\xe9\r\n\r\nbody\r\n"
    for raw, rcpt in (
        (huge, address),
        (broken, address),
        (unknown, f"bounces+{verp.token('other', 'x@example.org')}@{DOMAIN}"),
        (latin1, address),
    ):
        assert (250, b"OK: ignored") == _deliver(inbound, rcpt, raw)
    report = dsn("rcpt1@example.org", returned_headers(message))
    assert (250, b"OK: processed") == _deliver(inbound, address, report)
    assert ["rcpt1@example.org"] == list(_suppressed(redis_client, verp_settings))
    ignored = _report(verp_settings)["ignored"]
    assert {
        "too large": 1,
        "unsupported report type missing": 1,  # the broken MIME
        "unknown token": 1,
        "non-UTF-8 headers": 1,
    } == ignored


def test_the_inbound_command_takes_a_dsn_and_counts_it_on_its_metrics_port(
    verp_settings: Settings, producer: Producer, smtp_server: SmtpSink, redis_client: redis.Redis
) -> None:
    """`mailfleet inbound` listens, refuses other domains, processes a DSN, exports the count,
    and stops cleanly on SIGTERM."""
    _send(verp_settings, producer, 1)
    message = smtp_server.messages[0]
    port, metrics_port = free_port(), free_port()
    env = settings_env(verp_settings) | {"MAILFLEET_METRICS_PORT": str(metrics_port)}
    listener = subprocess.Popen(
        mailfleet_command("inbound", "--port", str(port)),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert listener.stdout is not None
        assert f"listening on 127.0.0.1:{port} for @{DOMAIN}" in listener.stdout.readline()
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
            client.ehlo("mx.example.net")
            client.mail("<>")
            assert 550 == client.rcpt("someone@example.org")[0]
            client.rset()
            address = f"bounces+{ref_of(message)}@{DOMAIN}"
            refused = client.sendmail(
                "", [address], dsn("rcpt1@example.org", returned_headers(message))
            )
        assert {} == refused
        assert ["rcpt1@example.org"] == list(_suppressed(redis_client, verp_settings))
        body = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text
        assert (
            'mailfleet_report_total{lane="transactional",metric="hard_bounced",'
            'sender_domain="example.com"} 1.0'
        ) in body
        listener.send_signal(signal.SIGTERM)
        assert 0 == listener.wait(timeout=30)
    finally:
        if listener.poll() is None:
            listener.kill()
            listener.wait()
        listener.stdout.close()
