"""`mailfleet dlq`: reading, replaying, purging and exporting dead letters on a real broker."""

from __future__ import annotations

import base64
import json
import os
import pty
import subprocess
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from kombu.connection import Connection

from mailfleet.producer.confirms import ConfirmChannel, Outgoing
from mailfleet.producer.devtools.sink import SmtpSink
from mailfleet.producer.ops.dlq.letter import Selection
from mailfleet.producer.ops.dlq.queue import DeadLetterQueue
from mailfleet.producer.publisher import Producer
from mailfleet.shared import names as headers
from mailfleet.shared.job import CONTENT_TYPE, JOB_TYPE, EmailJob, Lane
from mailfleet.shared.recipients import RecipientFilter
from mailfleet.shared.settings import Settings
from mailfleet.shared.suppression import SuppressionList
from tests.integration.helpers import (
    WorkerThread,
    mailfleet_command,
    make_job,
    settings_env,
    wait_until,
)

JUNK = b"\x00\xff not a job"
ALL = {"perm-1", "perm-2", "exh-1", "junk", "crash-1"}
REPLAYABLE = ALL - {"junk"}


@dataclass(frozen=True)
class Taken:
    """A message taken (and acked) from a queue, without the broker's x-delivery-count."""

    properties: dict[str, Any]
    headers: dict[str, Any]
    body: bytes


def _run(settings: Settings, *args: str, stdin: Any = subprocess.DEVNULL) -> Any:
    return subprocess.run(
        mailfleet_command(*args),
        env=settings_env(settings),
        stdin=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _depth(connection: Connection, queue: str) -> int:
    channel = connection.channel()
    try:
        return int(channel.queue_declare(queue, passive=True).message_count)
    finally:
        channel.close()


def _wait_depth(connection: Connection, queue: str, expected: int) -> None:
    """Wait until ``queue`` settles at ``expected`` ready messages (quorum counts lag a little)."""
    assert wait_until(lambda: _depth(connection, queue) == expected, timeout=10), (
        f"{queue} holds {_depth(connection, queue)} messages, expected {expected}"
    )


def _take_all(connection: Connection, queue: str, expected: int) -> list[Taken]:
    _wait_depth(connection, queue, expected)
    channel = connection.channel()
    taken = []
    try:
        while (message := channel.basic_get(queue)) is not None:
            properties = dict(message.properties)
            message_headers = dict(properties.pop("application_headers", None) or {})
            message_headers.pop("x-delivery-count", None)  # the lane queue adds it on delivery
            taken.append(Taken(properties, message_headers, bytes(message.body)))
            channel.basic_ack(message.delivery_tag)
    finally:
        channel.close()
    return taken


def _dead_letter(
    connection: Connection,
    settings: Settings,
    body: EmailJob | bytes,
    *,
    message_id: str,
    reason: str,
    lane: Lane = Lane.TRANSACTIONAL,
    error: str = "550 5.1.1 No such user here",
    attempts: int = 1,
    failed_at: datetime | None = None,
    recipients: list[str] | None = None,
) -> None:
    """Publish (confirmed) a dead letter with the headers ``worker/settle.py`` writes."""
    message_headers: dict[str, Any] = {
        headers.ATTEMPT: attempts,
        headers.REASON: reason,
        headers.ERROR: error,
        headers.ATTEMPTS: attempts,
        headers.FAILED_AT: (failed_at or datetime.now(UTC)).isoformat(timespec="seconds"),
        headers.LANE: lane.value,
    }
    if recipients is not None:
        message_headers[headers.RECIPIENTS] = json.dumps(recipients)
    outgoing = Outgoing(
        exchange=settings.names.dead_letter_exchange,
        routing_key=lane.value,
        body=body.to_wire() if isinstance(body, EmailJob) else body,
        message_id=message_id,
        properties={
            "content_type": CONTENT_TYPE,
            "type": JOB_TYPE,
            "delivery_mode": 2,
            "timestamp": int(time.time()) - 600,
            "application_headers": message_headers,
        },
    )
    channel = ConfirmChannel(connection, confirm_timeout=10)
    try:
        assert [message_id] == channel.publish([outgoing], window=1).confirmed
    finally:
        channel.close()


def _crash_until_dead_lettered(
    connection: Connection, settings: Settings, producer: Producer, job: EmailJob
) -> None:
    """Requeue ``job`` past the lane's x-delivery-limit, so RabbitMQ itself dead-letters it."""
    producer.publish(job)
    lane_queue = settings.names.lane_queue(job.lane)
    channel = connection.channel()

    def redelivered_or_dead() -> bool:
        message = channel.basic_get(lane_queue)
        if message is not None:
            channel.basic_reject(message.delivery_tag, requeue=True)
            return False
        return _depth(connection, settings.names.dead_queue) > 0

    try:
        assert wait_until(redelivered_or_dead, timeout=30, interval=0.01)
    finally:
        channel.close()


@pytest.fixture
def dead_letters(
    settings: Settings, amqp_connection: Connection, producer: Producer
) -> dict[str, EmailJob]:
    """Five dead letters: permanent x2, exhausted (one recipient left), invalid, crashed."""
    jobs = {
        "perm-1": make_job(1, id="perm-1", to=["rcpt1@example.org"]),
        "perm-2": make_job(2, id="perm-2", to=["rcpt2@example.net"], lane="bulk"),
        "exh-1": make_job(3, id="exh-1", to=["a@example.com", "b@example.org"]),
        "crash-1": make_job(4, id="crash-1", to=["c@example.com"], lane="bulk"),
    }
    two_hours_ago = datetime.now(UTC) - timedelta(hours=2)
    _dead_letter(
        amqp_connection,
        settings,
        jobs["perm-1"],
        message_id="perm-1",
        reason="permanent",
        failed_at=two_hours_ago,
    )
    _dead_letter(
        amqp_connection,
        settings,
        jobs["perm-2"],
        message_id="perm-2",
        reason="permanent",
        lane=Lane.BULK,
    )
    _dead_letter(
        amqp_connection,
        settings,
        jobs["exh-1"],
        message_id="exh-1",
        reason="exhausted",
        error="451 4.3.0 Try later",
        attempts=3,
        recipients=["a@example.com"],
    )
    _dead_letter(
        amqp_connection,
        settings,
        JUNK,
        message_id="junk",
        reason="invalid",
        error="job: not valid JSON",
    )
    _crash_until_dead_lettered(amqp_connection, settings, producer, jobs["crash-1"])
    _wait_depth(amqp_connection, settings.names.dead_queue, len(ALL))
    return jobs


def _dead_ids(connection: Connection, settings: Settings, expected: int) -> set[str]:
    _wait_depth(connection, settings.names.dead_queue, expected)
    return {letter.id for letter in DeadLetterQueue(connection, settings).letters()}


class TestDlqList:
    def test_list_json_describes_every_dead_letter(
        self, settings: Settings, dead_letters: dict[str, EmailJob]
    ) -> None:
        """`list --json` gives reason, lane, domains and attempts; a broker dead letter: crashed."""
        result = _run(settings, "dlq", "list", "--json")

        assert 0 == result.returncode, result.stderr
        rows = {row["id"]: row for row in json.loads(result.stdout)}
        assert ALL == set(rows)
        reasons = {key: row["reason"] for key, row in rows.items()}
        assert {
            "perm-1": "permanent",
            "perm-2": "permanent",
            "exh-1": "exhausted",
            "junk": "invalid",
            "crash-1": "crashed",
        } == reasons
        assert "bulk" == rows["crash-1"]["lane"]
        assert "delivery_limit" in rows["crash-1"]["error"]
        assert rows["crash-1"]["failed_at"] is not None
        assert ["example.com"] == rows["exh-1"]["domains"]
        assert 3 == rows["exh-1"]["attempts"]
        assert ["example.net"] == rows["perm-2"]["domains"]
        assert "451 4.3.0 Try later" == rows["exh-1"]["error"]

    def test_list_removes_nothing(
        self, settings: Settings, amqp_connection: Connection, dead_letters: dict[str, EmailJob]
    ) -> None:
        """Listing twice shows the same five letters, and the queue still holds all of them."""
        first = _run(settings, "dlq", "list")
        _wait_depth(amqp_connection, settings.names.dead_queue, len(ALL))
        second = _run(settings, "dlq", "list")

        assert 0 == first.returncode, first.stderr
        assert first.stdout == second.stdout
        assert f"listed 5 of 5 dead letters in {settings.names.dead_queue}" in first.stdout
        assert "crashed" in first.stdout
        assert ALL == _dead_ids(amqp_connection, settings, len(ALL))

    def test_list_filters_like_replay(
        self, settings: Settings, dead_letters: dict[str, EmailJob]
    ) -> None:
        """`list --reason permanent --lane bulk` shows only the letters passing both filters."""
        result = _run(settings, "dlq", "list", "--reason", "permanent", "--lane", "bulk", "--json")

        assert 0 == result.returncode, result.stderr
        assert ["perm-2"] == [row["id"] for row in json.loads(result.stdout)]


class TestDlqShow:
    def test_show_prints_every_header_and_the_job(
        self, settings: Settings, dead_letters: dict[str, EmailJob]
    ) -> None:
        """`show ID` prints the mailfleet headers and the decoded job."""
        result = _run(settings, "dlq", "show", "exh-1")

        assert 0 == result.returncode, result.stderr
        assert "x-mailfleet-error: 451 4.3.0 Try later" in result.stdout
        assert 'x-mailfleet-recipients: ["a@example.com"]' in result.stdout
        assert '"subject": "Test 3"' in result.stdout

    def test_show_json_of_a_broker_dead_letter_has_x_death(
        self, settings: Settings, dead_letters: dict[str, EmailJob]
    ) -> None:
        """`show --json` of a crashed job carries RabbitMQ's x-death entry and the job."""
        result = _run(settings, "dlq", "show", "crash-1", "--json")

        assert 0 == result.returncode, result.stderr
        [record] = json.loads(result.stdout)
        assert "crash-1" == record["job"]["id"]
        [death] = record["headers"]["x-death"]
        assert "delivery_limit" == death["reason"]
        assert f"{settings.namespace}.bulk" == death["queue"]

    def test_show_of_an_invalid_letter_gives_the_body_in_base64(
        self, settings: Settings, dead_letters: dict[str, EmailJob]
    ) -> None:
        """A body that is not UTF-8 is shown base64-encoded, with the reason it is no job."""
        result = _run(settings, "dlq", "show", "junk", "--json")

        assert 0 == result.returncode, result.stderr
        [record] = json.loads(result.stdout)
        assert (None, "base64") == (record["job"], record["body_encoding"])
        assert JUNK == base64.b64decode(record["body"])

    def test_show_of_an_unknown_id_fails(
        self, settings: Settings, dead_letters: dict[str, EmailJob]
    ) -> None:
        """An id that is not in the queue exits 1 and says so."""
        result = _run(settings, "dlq", "show", "no-such-job")

        assert 1 == result.returncode
        assert "no-such-job" in result.stderr


class TestDlqReplay:
    def test_dry_run_moves_nothing(
        self, settings: Settings, amqp_connection: Connection, dead_letters: dict[str, EmailJob]
    ) -> None:
        """`replay --dry-run` reports what it would do; lanes stay empty, the DLQ stays full."""
        result = _run(settings, "dlq", "replay", "--dry-run")

        assert 0 == result.returncode, result.stderr
        summary = result.stdout.strip().splitlines()[-1]
        assert summary.startswith("dry run: would replay 4, would skip 0")
        assert "invalid 1" in summary
        assert "left 5" in summary
        assert ALL == _dead_ids(amqp_connection, settings, len(ALL))
        for lane in Lane:
            assert 0 == _depth(amqp_connection, settings.names.lane_queue(lane))

    def test_replay_moves_letters_to_their_lanes_with_the_attempt_reset(
        self, settings: Settings, amqp_connection: Connection, dead_letters: dict[str, EmailJob]
    ) -> None:
        """Replayed jobs reach their lane as attempt 1 of a new round, without dead-letter
        headers; others stay."""
        before = {
            letter.id: letter for letter in DeadLetterQueue(amqp_connection, settings).letters()
        }
        started = int(time.time())

        result = _run(settings, "dlq", "replay", "--reason", "permanent")

        assert 0 == result.returncode, result.stderr
        expected = "replayed 2, skipped 0 (already sent 0, suppressed 0), left 3"
        assert expected == result.stdout.strip().splitlines()[-1]
        [transactional] = _take_all(
            amqp_connection, settings.names.lane_queue(Lane.TRANSACTIONAL), 1
        )
        [bulk] = _take_all(amqp_connection, settings.names.lane_queue(Lane.BULK), 1)
        assert ("perm-1", "perm-2") == (
            transactional.properties["message_id"],
            bulk.properties["message_id"],
        )
        assert dead_letters["perm-1"].to_wire() == transactional.body
        assert {headers.ATTEMPT: 1, headers.REPLAYS: 1} == transactional.headers
        assert (JOB_TYPE, CONTENT_TYPE, 2) == (
            transactional.properties["type"],
            transactional.properties["content_type"],
            transactional.properties["delivery_mode"],
        )
        assert transactional.properties["timestamp"] >= started
        _wait_depth(amqp_connection, settings.names.dead_queue, 3)
        after = DeadLetterQueue(amqp_connection, settings).letters()
        assert {"exh-1", "junk", "crash-1"} == {letter.id for letter in after}
        for letter in after:
            assert before[letter.id].body == letter.body
            assert before[letter.id].headers.keys() - {"x-delivery-count"} == (
                letter.headers.keys() - {"x-delivery-count"}
            )

    @pytest.mark.parametrize(
        ("args", "expected"),
        [
            (["--reason", "crashed"], {"crash-1"}),
            (["--lane", "bulk"], {"perm-2", "crash-1"}),
            (["--domain", "example.org"], {"perm-1"}),  # exh-1's example.org rcpt was settled
            (["--older-than", "1h"], {"perm-1"}),
            (["--id", "perm-1", "--id", "exh-1"], {"perm-1", "exh-1"}),
            (["--limit", "2"], None),
        ],
        ids=["reason", "lane", "domain", "older-than", "id", "limit"],
    )
    def test_each_filter_replays_only_its_letters(
        self,
        settings: Settings,
        amqp_connection: Connection,
        dead_letters: dict[str, EmailJob],
        args: list[str],
        expected: set[str] | None,
    ) -> None:
        """Only the letters passing the filter move to the lanes; the rest stay in the DLQ."""
        result = _run(settings, "dlq", "replay", "--json", *args)

        assert 0 == result.returncode, result.stderr
        replayed = set(json.loads(result.stdout)["replayed"])
        if expected is None:  # --limit 2: any two of the replayable letters
            assert 2 == len(replayed)
            assert replayed <= REPLAYABLE
        else:
            assert expected == replayed
        moved = {
            taken.properties["message_id"]
            for lane, count in (
                (Lane.TRANSACTIONAL, len(replayed - {"perm-2", "crash-1"})),
                (Lane.BULK, len(replayed & {"perm-2", "crash-1"})),
            )
            for taken in _take_all(amqp_connection, settings.names.lane_queue(lane), count)
        }
        assert replayed == moved
        assert ALL - replayed == _dead_ids(amqp_connection, settings, len(ALL - replayed))

    def test_a_crashed_job_goes_back_to_the_lane_named_in_x_death(
        self, settings: Settings, amqp_connection: Connection, dead_letters: dict[str, EmailJob]
    ) -> None:
        """The broker's own dead letter returns to `bulk` without x-death or delivery counts."""
        result = _run(settings, "dlq", "replay", "--id", "crash-1")

        assert 0 == result.returncode, result.stderr
        [taken] = _take_all(amqp_connection, settings.names.lane_queue(Lane.BULK), 1)
        assert {headers.ATTEMPT: 1, headers.REPLAYS: 1} == taken.headers

    def test_the_recipients_header_is_kept(
        self, settings: Settings, amqp_connection: Connection, dead_letters: dict[str, EmailJob]
    ) -> None:
        """A letter for some recipients only is replayed for those recipients only."""
        result = _run(settings, "dlq", "replay", "--id", "exh-1")

        assert 0 == result.returncode, result.stderr
        [taken] = _take_all(amqp_connection, settings.names.lane_queue(Lane.TRANSACTIONAL), 1)
        assert ["a@example.com"] == json.loads(taken.headers[headers.RECIPIENTS])
        assert 1 == taken.headers[headers.ATTEMPT]
        assert headers.REASON not in taken.headers

    def test_invalid_letters_stay_in_the_queue(
        self, settings: Settings, amqp_connection: Connection, dead_letters: dict[str, EmailJob]
    ) -> None:
        """A letter that is not a job cannot be replayed: it is counted and left alone."""
        result = _run(settings, "dlq", "replay", "--reason", "invalid", "--json")

        assert 0 == result.returncode, result.stderr
        report = json.loads(result.stdout)
        assert (["junk"], [], 5) == (report["invalid"], report["replayed"], report["left"])
        assert ALL == _dead_ids(amqp_connection, settings, len(ALL))

    def test_already_sent_and_suppressed_recipients_are_not_mailed_again(
        self,
        settings: Settings,
        amqp_connection: Connection,
        redis_client: redis.Redis,
    ) -> None:
        """Sent-ledger and suppressed recipients are dropped; a letter with nobody left is acked."""
        jobs = {
            "sent": make_job(1, id="sent", to=["s@example.org"]),
            "supp": make_job(2, id="supp", to=["Bounce@Example.org"]),
            "half": make_job(3, id="half", to=["x@example.org", "y@example.org"]),
        }
        for job_id, job in jobs.items():
            _dead_letter(amqp_connection, settings, job, message_id=job_id, reason="permanent")
        redis_client.hset(settings.names.redis_key("sent", "sent"), "s@example.org", "1")
        redis_client.hset(settings.names.redis_key("sent", "half"), "x@example.org", "1")
        SuppressionList(redis_client, settings.names).add("bounce@example.org", "5.1.1")
        _wait_depth(amqp_connection, settings.names.dead_queue, 3)

        result = _run(settings, "dlq", "replay")

        assert 0 == result.returncode, result.stderr
        lines = result.stdout.strip().splitlines()
        assert "skipped, already sent to every recipient: sent" in lines
        assert "skipped, every recipient left is suppressed: supp" in lines
        assert (
            "replayed 1, skipped 2 (already sent 1, suppressed 1), recipients dropped 1, left 0"
            == lines[-1]
        )
        [taken] = _take_all(amqp_connection, settings.names.lane_queue(Lane.TRANSACTIONAL), 1)
        assert "half" == taken.properties["message_id"]
        assert ["y@example.org"] == json.loads(taken.headers[headers.RECIPIENTS])
        _wait_depth(amqp_connection, settings.names.dead_queue, 0)

    def test_a_replay_the_broker_refuses_keeps_the_dead_letter(
        self, settings: Settings, amqp_connection: Connection, dead_letters: dict[str, EmailJob]
    ) -> None:
        """Confirm-then-ack: with no bulk queue to route to, the letter stays and replay exits 1."""
        channel = amqp_connection.channel()
        channel.queue_delete(settings.names.lane_queue(Lane.BULK))
        channel.close()

        result = _run(settings, "dlq", "replay", "--id", "perm-2", "--id", "perm-1")

        assert 1 == result.returncode
        assert "refused by the broker: perm-2" in result.stdout
        assert "replayed 1" in result.stdout
        assert ALL - {"perm-1"} == _dead_ids(amqp_connection, settings, len(ALL) - 1)

    def test_a_replayed_job_is_delivered_by_a_worker(
        self,
        settings: Settings,
        amqp_connection: Connection,
        smtp_server: SmtpSink,
        dead_letters: dict[str, EmailJob],
    ) -> None:
        """After a replay a worker sends the job to the recipients still owed it, once."""
        result = _run(settings, "dlq", "replay", "--id", "exh-1", "--rate", "20")
        assert 0 == result.returncode, result.stderr

        worker = WorkerThread(settings, burst=True)
        assert 0 == worker.join(timeout=60)

        assert [("exh-1", ("a@example.com",))] == [
            (message.job_id, message.rcpt_tos) for message in smtp_server.messages
        ]
        assert ALL - {"exh-1"} == _dead_ids(amqp_connection, settings, len(ALL) - 1)

    def test_the_python_api_reports_what_it_did(
        self,
        settings: Settings,
        amqp_connection: Connection,
        redis_client: redis.Redis,
        dead_letters: dict[str, EmailJob],
    ) -> None:
        """DeadLetterQueue.replay with a Selection returns ids per outcome and what is left."""
        redis_client.hset(settings.names.redis_key("sent", "perm-1"), "rcpt1@example.org", "1")
        queue = DeadLetterQueue(amqp_connection, settings, batch=1)

        report = queue.replay(
            Selection(reasons=frozenset({"permanent"})),
            RecipientFilter.reading(redis_client, settings.names),
        )

        assert (["perm-2"], ["perm-1"], [], None) == (
            report.replayed,
            report.skipped_sent,
            report.failed,
            report.error,
        )
        assert 3 == report.left
        assert ALL - {"perm-1", "perm-2"} == _dead_ids(amqp_connection, settings, 3)


class TestDlqPurge:
    def test_a_confirmed_purge_deletes_only_the_letters_shown(
        self, settings: Settings, amqp_connection: Connection, dead_letters: dict[str, EmailJob]
    ) -> None:
        """A letter that arrives under a shown id after the preview is not deleted unseen."""
        queue = DeadLetterQueue(amqp_connection, settings)
        selection = Selection(reasons=frozenset({"permanent"}))
        preview = queue.purge(selection, dry_run=True)
        _dead_letter(
            amqp_connection,
            settings,
            dead_letters["perm-1"],
            message_id="perm-1",
            reason="permanent",
            error="550 5.7.1 a new failure nobody has seen",
        )
        _wait_depth(amqp_connection, settings.names.dead_queue, len(ALL) + 1)

        report = queue.purge(selection, only=Counter(preview.fingerprints))

        assert sorted(preview.purged) == sorted(report.purged)
        left = queue.letters(Selection(ids=frozenset({"perm-1"})))
        assert ["550 5.7.1 a new failure nobody has seen"] == [letter.error for letter in left]

    def test_purge_with_a_filter_and_yes(
        self, settings: Settings, amqp_connection: Connection, dead_letters: dict[str, EmailJob]
    ) -> None:
        """`purge --reason permanent --yes` deletes just those, and nothing reaches a lane."""
        result = _run(settings, "dlq", "purge", "--reason", "permanent", "--yes")

        assert 0 == result.returncode, result.stderr
        assert "purged 2, left 3" == result.stdout.strip()
        assert ALL - {"perm-1", "perm-2"} == _dead_ids(amqp_connection, settings, 3)
        for lane in Lane:
            assert 0 == _depth(amqp_connection, settings.names.lane_queue(lane))

    def test_purge_dry_run_deletes_nothing(
        self, settings: Settings, amqp_connection: Connection, dead_letters: dict[str, EmailJob]
    ) -> None:
        """`purge --dry-run --older-than 1h` names the one old letter and keeps it."""
        result = _run(settings, "dlq", "purge", "--older-than", "1h", "--dry-run", "--json")

        assert 0 == result.returncode, result.stderr
        assert ["perm-1"] == json.loads(result.stdout)["purged"]
        assert ALL == _dead_ids(amqp_connection, settings, len(ALL))

    def test_purge_refuses_without_a_terminal_or_yes(
        self, settings: Settings, amqp_connection: Connection, dead_letters: dict[str, EmailJob]
    ) -> None:
        """Without --yes and with stdin not a terminal, purge exits 2 and deletes nothing."""
        result = _run(settings, "dlq", "purge")

        assert 2 == result.returncode
        assert "--yes" in result.stderr
        assert ALL == _dead_ids(amqp_connection, settings, len(ALL))

    @pytest.mark.parametrize(("answer", "code", "left"), [("n", 1, 5), ("y", 0, 4)])
    def test_purge_asks_on_a_terminal(
        self,
        settings: Settings,
        amqp_connection: Connection,
        dead_letters: dict[str, EmailJob],
        answer: str,
        code: int,
        left: int,
    ) -> None:
        """On a terminal purge asks first: `n` keeps everything, `y` deletes what it showed."""
        controller, terminal = pty.openpty()
        try:
            os.write(controller, f"{answer}\n".encode())
            result = _run(settings, "dlq", "purge", "--reason", "invalid", stdin=terminal)
        finally:
            os.close(terminal)
            os.close(controller)

        assert code == result.returncode, result.stderr
        assert "Delete 1 of 5 dead letters (reason=invalid) for good? [y/N]" in result.stdout
        assert left == len(_dead_ids(amqp_connection, settings, left))


class TestDlqExport:
    def test_export_writes_json_lines_and_removes_nothing(
        self,
        settings: Settings,
        amqp_connection: Connection,
        dead_letters: dict[str, EmailJob],
        tmp_path: Any,
    ) -> None:
        """`export --output FILE`: one JSON line per letter with headers and body; none removed."""
        output = tmp_path / "dead.jsonl"

        result = _run(settings, "dlq", "export", "--output", str(output))

        assert 0 == result.returncode, result.stderr
        assert f"exported 5 of 5 dead letters to {output}" == result.stderr.strip()
        records = {
            record["id"]: record
            for record in map(json.loads, output.read_text(encoding="utf-8").splitlines())
        }
        assert ALL == set(records)
        assert ("base64", JUNK) == (
            records["junk"]["body_encoding"],
            base64.b64decode(records["junk"]["body"]),
        )
        assert "utf-8" == records["perm-1"]["body_encoding"]
        assert "perm-1" == json.loads(records["perm-1"]["body"])["id"]
        assert "permanent" == records["perm-1"]["headers"][headers.REASON]
        assert "delivery_limit" == records["crash-1"]["headers"]["x-death"][0]["reason"]
        assert ALL == _dead_ids(amqp_connection, settings, len(ALL))

    def test_export_to_stdout_with_a_filter(
        self, settings: Settings, dead_letters: dict[str, EmailJob]
    ) -> None:
        """Without --output the JSON lines go to stdout, the summary to stderr."""
        result = _run(settings, "dlq", "export", "--reason", "crashed")

        assert 0 == result.returncode, result.stderr
        [line] = result.stdout.splitlines()
        assert "crash-1" == json.loads(line)["properties"]["message_id"]


class TestDlqUsage:
    @pytest.mark.parametrize(
        "args",
        [
            ["dlq", "replay", "--older-than", "soon"],
            ["dlq", "list", "--reason", "bored"],
            ["dlq", "replay", "--rate", "0"],
            ["dlq"],
        ],
    )
    def test_bad_usage_exits_2(self, settings: Settings, args: list[str]) -> None:
        """Bad arguments exit 2 with a usage message and touch nothing."""
        result = _run(settings, *args)

        assert 2 == result.returncode
        assert "usage:" in result.stderr

    def test_an_undeclared_namespace_is_an_error(self, settings: Settings) -> None:
        """With no dead-letter queue to read, `list` exits 1 naming the queue and the fix."""
        env = {**settings_env(settings), "MAILFLEET_NAMESPACE": f"{settings.namespace}-none"}
        result = subprocess.run(
            mailfleet_command("dlq", "list"),
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

        assert 1 == result.returncode
        assert "does not exist" in result.stderr
        assert "mailfleet declare" in result.stderr
