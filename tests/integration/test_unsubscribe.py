"""One-click unsubscribe end to end: a worker writes List-Unsubscribe into bulk mail, the
link is POSTed to a real ``unsubscribe-server`` (uvicorn), and the next bulk job to that
person is skipped while their transactional mail still goes out."""

from __future__ import annotations

import email
import json
import subprocess
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis
from kombu.connection import Connection
from pydantic import SecretStr

from mailfleet.producer.devtools.sink import SmtpSink
from mailfleet.producer.publisher import Producer
from mailfleet.shared.scope import Scope
from mailfleet.shared.settings import Settings
from mailfleet.shared.suppression import SuppressionList
from mailfleet.worker.mime.finish import unsubscribe_headers
from tests.integration.helpers import (
    WorkerThread,
    drain_dead_letters,
    mailfleet_command,
    make_job,
    settings_env,
)
from tests.integration.unsubscribe_server import serving

ANN = "ann@example.org"
SENDER = "News <news@shop.example>"
ONE_CLICK = {"List-Unsubscribe": "One-Click"}


@pytest.fixture
def server(settings: Settings, redis_client: redis.Redis) -> Iterator[tuple[Settings, str]]:
    secret = settings.model_copy(update={"unsubscribe_secret": SecretStr("s3cret")})
    with serving(secret, redis_client) as base:
        yield secret.model_copy(update={"unsubscribe_url": base}), base


def job(number: int, **fields: Any) -> Any:
    return make_job(number, **{"from": SENDER, "to": [ANN], **fields})


def link_of(message: bytes) -> str:
    header = " ".join(str(email.message_from_bytes(message)["List-Unsubscribe"]).split())
    return header.removeprefix("<").removesuffix(">")


def run_until_drained(settings: Settings) -> None:
    assert 0 == WorkerThread(settings, burst=True).join(timeout=60)


class TestOneClick:
    def test_a_post_suppresses_the_scope_and_only_that(
        self,
        server: tuple[Settings, str],
        producer: Producer,
        smtp_server: SmtpSink,
        redis_client: redis.Redis,
        amqp_connection: Connection,
    ) -> None:
        """POST with the exact body: 200 and Ann suppressed for shop.example/weekly; then a
        weekly job to her is skipped, while a transactional one and another list go out."""
        settings, base = server
        producer.publish(job(1, lane="bulk", list="weekly"))
        run_until_drained(settings)
        [first] = smtp_server.messages
        parsed = email.message_from_bytes(first.data)
        assert "List-Unsubscribe=One-Click" == parsed["List-Unsubscribe-Post"]
        link = link_of(first.data)
        assert link.startswith(f"{base}/u/")

        answer = httpx.post(link, files={"List-Unsubscribe": (None, "One-Click")})
        assert 200 == answer.status_code

        suppression = SuppressionList(redis_client, settings.names)
        assert [] == suppression.entries()
        [entry] = suppression.scoped_entries()
        assert (ANN, "shop.example/weekly") == (entry.address, entry.scope)

        producer.publish(job(2, lane="bulk", list="weekly"))
        producer.publish(job(3, lane="transactional", subject="Reset your password"))
        producer.publish(job(4, lane="bulk", list="offers"))
        run_until_drained(settings)

        sent = sorted(message.job_id or "" for message in smtp_server.messages)
        assert ["job-1", "job-3", "job-4"] == sent
        transactional = next(m for m in smtp_server.messages if m.job_id == "job-3")
        assert b"List-Unsubscribe" not in transactional.data
        letters = drain_dead_letters(amqp_connection, settings)
        assert [("job-2", "suppressed")] == [(letter.job_id, letter.reason) for letter in letters]

    def test_urlencoded_post_works_too(
        self, server: tuple[Settings, str], redis_client: redis.Redis
    ) -> None:
        """The confirm page's form posts urlencoded; that suppresses as well."""
        settings, _ = server
        link = self._link(settings)
        assert 200 == httpx.post(link, data=ONE_CLICK).status_code
        entries = SuppressionList(redis_client, settings.names).scoped_entries()
        assert [(ANN, "shop.example/bulk")] == [(entry.address, entry.scope) for entry in entries]

    def test_a_get_shows_a_page_and_changes_nothing(
        self, server: tuple[Settings, str], redis_client: redis.Redis
    ) -> None:
        """GET answers a confirm page with a POST form, and suppresses no one."""
        settings, _ = server
        page = httpx.get(self._link(settings))
        assert 200 == page.status_code
        assert '<form method="post"' in page.text
        assert 'name="List-Unsubscribe" value="One-Click"' in page.text
        assert [] == SuppressionList(redis_client, settings.names).scoped_entries()

    def test_a_forged_token_gets_404(
        self, server: tuple[Settings, str], redis_client: redis.Redis
    ) -> None:
        """A token changed by one character: 404 to GET and POST, nothing suppressed."""
        settings, base = server
        link = self._link(settings)
        forged = link[:-1] + ("A" if link[-1] != "A" else "B")
        assert 404 == httpx.get(forged).status_code
        assert 404 == httpx.post(forged, data=ONE_CLICK).status_code
        assert 404 == httpx.post(f"{base}/u/nonsense", data=ONE_CLICK).status_code
        assert [] == SuppressionList(redis_client, settings.names).scoped_entries()

    def test_a_wrong_body_gets_400(
        self, server: tuple[Settings, str], redis_client: redis.Redis
    ) -> None:
        """A genuine token without List-Unsubscribe=One-Click changes nothing."""
        settings, _ = server
        link = self._link(settings)
        assert 400 == httpx.post(link, data={"List-Unsubscribe": "yes"}).status_code
        assert 400 == httpx.post(link).status_code
        assert [] == SuppressionList(redis_client, settings.names).scoped_entries()

    def test_suppression_list_shows_the_scope(
        self, server: tuple[Settings, str], redis_client: redis.Redis
    ) -> None:
        """`mailfleet suppression list` shows scoped entries beside global ones."""
        settings, _ = server
        assert 200 == httpx.post(self._link(settings), data=ONE_CLICK).status_code
        SuppressionList(redis_client, settings.names).add("bob@example.org", "bounced")
        listed = subprocess.run(
            mailfleet_command("suppression", "list", "--json"),
            env=settings_env(settings),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert 0 == listed.returncode, listed.stderr
        rows = [(row["address"], row["scope"]) for row in json.loads(listed.stdout)]
        assert [(ANN, "shop.example/bulk"), ("bob@example.org", "*")] == rows

    @staticmethod
    def _link(settings: Settings) -> str:
        headers = unsubscribe_headers(settings)
        assert headers is not None
        return headers.link(ANN, Scope("shop.example", "bulk"))
