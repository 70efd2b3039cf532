"""`mailfleet dashboard` over HTTP on real RabbitMQ and Redis: the pages, the token, CSRF,
escaping, paging, and that nothing secret is rendered."""

from __future__ import annotations

import re
import subprocess
import time

import httpx
import pytest
import redis
from pydantic import SecretStr

from mailfleet.dashboard.pages.dead_letters import SCAN_BUDGET
from mailfleet.dashboard.security import CSRF_COOKIE, SESSION_COOKIE
from mailfleet.producer.devtools.sink import SmtpSink
from mailfleet.producer.publisher import Producer
from mailfleet.shared.durations import Rate
from mailfleet.shared.relays import Relay
from mailfleet.shared.scope import Scope
from mailfleet.shared.settings import Settings
from mailfleet.shared.suppression import SuppressionList
from tests.integration.dashboard_helpers import dashboard, publish_dead_letters
from tests.integration.helpers import (
    WorkerThread,
    mailfleet_command,
    make_job,
    settings_env,
    wait_until,
)

TOKEN = "s3cret-dashboard-token"


def _csrf(client: httpx.Client, url: str) -> str:
    """Open a page (which sets the CSRF cookie) and read the token from its form."""
    page = client.get(url)
    match = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert match is not None, page.text[:500]
    assert client.cookies.get(CSRF_COOKIE) == match.group(1)
    return match.group(1)


class TestPages:
    def test_every_page_renders_and_the_overview_shows_the_queues(self, settings: Settings) -> None:
        """Each page answers 200 on a fresh namespace; the overview names every queue."""
        with dashboard(settings) as server, httpx.Client(base_url=server.url) as client:
            for path in ("/", "/dead-letters", "/suppression", "/limits", "/events"):
                assert 200 == client.get(path).status_code, path
            overview = client.get("/").text
        names = settings.names
        for queue in (names.dead_queue, f"{settings.namespace}.transactional"):
            assert f'data-depth="{queue}"' in overview

    def test_the_overview_shows_a_ready_worker_from_its_heartbeat(self, settings: Settings) -> None:
        """A running worker's beat shows it ready, and its relay's breaker closed."""
        WorkerThread(settings)
        with dashboard(settings) as server, httpx.Client(base_url=server.url) as client:
            assert wait_until(lambda: '<span class="ok">ready</span>' in client.get("/").text, 15)
            page = client.get("/").text
        relay = settings.smtp_relays[0].name
        assert re.search(rf"<td>{re.escape(relay)}</td><td class=\"num\">1</td>", page)

    def test_the_send_rate_chart_counts_what_the_worker_delivered(
        self, settings: Settings, producer: Producer, smtp_server: SmtpSink
    ) -> None:
        """Jobs delivered by a worker land in the send history the chart draws."""
        producer.publish_many([make_job(n) for n in range(20)])
        WorkerThread(settings)
        assert wait_until(lambda: smtp_server.count >= 20, 30)
        client = redis.Redis.from_url(settings.redis_url.get_secret_value())
        try:
            keys = list(client.scan_iter(match=f"{settings.names.delivered_counter}:*"))
            assert 20 == sum(int(client.get(key) or 0) for key in keys)
        finally:
            client.close()


class TestDeadLetterTable:
    def test_the_table_is_paged_and_filtered_with_the_dlq_filters(self, settings: Settings) -> None:
        """120 letters: 50 a page with a link to the next; a reason filter narrows them."""
        publish_dead_letters(settings, [make_job(n) for n in range(110)])
        publish_dead_letters(
            settings, [make_job(n) for n in range(200, 210)], reason="exhausted", error="451"
        )
        with dashboard(settings) as server, httpx.Client(base_url=server.url) as client:
            pages = [client.get("/dead-letters").text]
            while match := re.search(r'href="/dead-letters\?([^"]+)" id="next"', pages[-1]):
                assert len(pages) < 5
                pages.append(
                    client.get(f"/dead-letters?{match.group(1).replace('&amp;', '&')}").text
                )
            exhausted = client.get("/dead-letters", params={"reason": "exhausted"}).text
            again = client.get("/dead-letters").text
            bad = client.get("/dead-letters", params={"lane": "nope"})
        shown = [re.findall(r'letter\?id=([\w-]+)"', page) for page in pages]
        assert [50, 50, 20] == [len(ids) for ids in shown]
        expected = [f"job-{n}" for n in [*range(110), *range(200, 210)]]
        assert expected == [job_id for ids in shown for job_id in ids]
        assert "120 in" in pages[0]
        assert 10 == exhausted.count('href="/dead-letters/letter?id=')
        assert 50 == again.count('href="/dead-letters/letter?id=')
        assert 400 == bad.status_code
        assert "lane &#39;nope&#39; is not one of" in bad.text

    def test_a_letter_the_table_showed_opens_without_reading_the_queue(
        self, settings: Settings
    ) -> None:
        """A letter from the table's page opens from what the table read; one deep in the
        queue that no page showed is looked for no further than the budget, and says so."""
        publish_dead_letters(settings, [make_job(n) for n in range(SCAN_BUDGET + 100)])
        with dashboard(settings) as server, httpx.Client(base_url=server.url) as client:
            table = client.get("/dead-letters").text
            shown = client.get("/dead-letters/letter", params={"id": "job-7"})
            deep = client.get("/dead-letters/letter", params={"id": f"job-{SCAN_BUDGET + 99}"})
        assert 'letter?id=job-7"' in table
        assert 200 == shown.status_code
        assert "As the table read it" in shown.text
        assert "Body of test email 7." in shown.text
        assert 404 == deep.status_code
        assert f"among the {SCAN_BUDGET} at the head of the queue" in deep.text

    def test_a_page_with_rare_matches_reads_no_more_than_its_budget(
        self, settings: Settings
    ) -> None:
        """One matching letter behind 200 others: the first page stops after its budget of
        reads and says so, and "read on" finds the letter."""
        publish_dead_letters(settings, [make_job(n) for n in range(200)])
        publish_dead_letters(settings, [make_job(999)], reason="exhausted", error="451")
        with dashboard(settings) as server, httpx.Client(base_url=server.url) as client:
            first = client.get("/dead-letters", params={"reason": "exhausted"}).text
            match = re.search(r'href="/dead-letters\?([^"]+)" id="next"', first)
            assert match is not None
            second = client.get(f"/dead-letters?{match.group(1).replace('&amp;', '&')}").text
        assert f"of {SCAN_BUDGET} read for this page" in first
        assert "letter?id=" not in first
        assert ["job-999"] == re.findall(r'letter\?id=([\w-]+)"', second)

    def test_a_subject_with_a_script_tag_is_shown_as_text(self, settings: Settings) -> None:
        """Job bodies come from other systems: escaped, never markup."""
        evil = make_job(1, subject="<script>alert(1)</script>", id="evil-1")
        publish_dead_letters(settings, [evil])
        with dashboard(settings) as server, httpx.Client(base_url=server.url) as client:
            page = client.get("/dead-letters/letter", params={"id": "evil-1"})
        assert 200 == page.status_code
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
        assert "<script>alert" not in page.text
        assert "script-src 'self'" in page.headers["content-security-policy"]


class TestSecurity:
    def test_beyond_loopback_without_a_token_start_up_refuses_in_one_line(
        self, settings: Settings
    ) -> None:
        env = settings_env(settings)
        env.pop("MAILFLEET_DASHBOARD_TOKEN", None)
        result = subprocess.run(
            mailfleet_command("dashboard", "--host", "0.0.0.0", "--port", "8690"),  # noqa: S104
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert 2 == result.returncode
        assert [
            "mailfleet dashboard: --host 0.0.0.0 is not a loopback address: "
            "set MAILFLEET_DASHBOARD_TOKEN to bind there"
        ] == result.stderr.splitlines()

    def test_with_a_token_a_request_without_it_gets_401_and_the_login_form(
        self, settings: Settings
    ) -> None:
        """Bound to every address (reached over loopback): no token, no page."""
        guarded = settings.model_copy(update={"dashboard_token": SecretStr(TOKEN)})
        everywhere = "0.0.0.0"  # noqa: S104 (the point of the test)
        with (
            dashboard(guarded, host=everywhere) as server,
            httpx.Client(base_url=server.url) as client,
        ):
            anonymous = client.get("/dead-letters")
            wrong = client.get("/", headers={"Authorization": "Bearer nope"})
            bearer = client.get("/", headers={"Authorization": f"Bearer {TOKEN}"})
            static = client.get("/static/style.css")
        assert 401 == anonymous.status_code
        assert 'name="token"' in anonymous.text
        assert 401 == wrong.status_code
        assert 200 == bearer.status_code
        assert "Overview" in bearer.text
        assert 200 == static.status_code

    def test_the_login_form_sets_an_http_only_strict_cookie_without_the_token(
        self, settings: Settings
    ) -> None:
        guarded = settings.model_copy(update={"dashboard_token": SecretStr(TOKEN)})
        with dashboard(guarded) as server, httpx.Client(base_url=server.url) as client:
            csrf = _csrf(client, "/login")
            refused = client.post("/login", data={"csrf": csrf, "token": "wrong", "next": "/"})
            answer = client.post("/login", data={"csrf": csrf, "token": TOKEN, "next": "/limits"})
            after = client.get("/limits")
        assert 401 == refused.status_code
        assert 303 == answer.status_code
        assert "/limits" == answer.headers["location"]
        cookie = answer.headers["set-cookie"]
        assert cookie.startswith(f"{SESSION_COOKIE}=")
        assert "HttpOnly" in cookie
        assert "SameSite=strict" in cookie.replace("Strict", "strict")
        assert TOKEN not in cookie
        assert 200 == after.status_code
        assert "Limits" in after.text

    def test_a_forged_post_without_the_csrf_token_gets_403_and_changes_nothing(
        self, settings: Settings, redis_client: redis.Redis
    ) -> None:
        with dashboard(settings) as server, httpx.Client(base_url=server.url) as client:
            forged = client.post("/suppression/add", data={"address": "ann@example.org"})
            _csrf(client, "/suppression")  # now with the cookie, but still no token posted
            still_forged = client.post("/suppression/add", data={"address": "ann@example.org"})
            wrong = client.post(
                "/suppression/add", data={"address": "ann@example.org", "csrf": "guess"}
            )
        assert [403, 403, 403] == [forged.status_code, still_forged.status_code, wrong.status_code]
        assert [] == SuppressionList(redis_client, settings.names).entries()

    def test_no_page_shows_a_password(self, settings: Settings, smtp_server: SmtpSink) -> None:
        """URL passwords stay out of every page, whatever is configured."""
        secret_relay = Relay.parse(f"smtp://mailer:relay-pa55word@127.0.0.1:{smtp_server.port}")
        leaky = settings.model_copy(
            update={
                "smtp_relays": [secret_relay],
                "smtp_password": SecretStr("smtp-pa55word"),
                "rate_limit": Rate.parse("50/s"),
            }
        )
        with dashboard(leaky) as server, httpx.Client(base_url=server.url) as client:
            pages = [client.get(p).text for p in ("/", "/limits", "/events", "/dead-letters")]
        amqp_password = settings.amqp_url.get_secret_value().split(":")[2].split("@")[0]
        for page in pages:
            for secret in ("relay-pa55word", "smtp-pa55word", f":{amqp_password}@"):
                assert secret not in page


class TestActions:
    def test_suppression_add_search_and_remove(
        self, settings: Settings, redis_client: redis.Redis
    ) -> None:
        suppression = SuppressionList(redis_client, settings.names)
        with dashboard(settings) as server, httpx.Client(base_url=server.url) as client:
            csrf = _csrf(client, "/suppression")
            added = client.post(
                "/suppression/add",
                data={"csrf": csrf, "address": "Ann <ANN@example.org>", "reason": "asked"},
            )
            bad = client.post("/suppression/add", data={"csrf": csrf, "address": "not an address"})
            assert ["ann@example.org"] == [e.address for e in suppression.entries()]
            found = client.get("/suppression", params={"q": "ann@"}).text
            missing = client.get("/suppression", params={"q": "bob"}).text
            removed = client.post(
                "/suppression/remove", data={"csrf": csrf, "address": "ann@example.org"}
            )
        assert 303 == added.status_code
        assert 400 == bad.status_code
        assert "cannot suppress that address" in bad.text
        assert "ann@example.org" in found
        assert "asked" in found
        assert "<td>ann@example.org</td>" not in missing
        assert "<td>ann@example.org</td>" in found
        assert 303 == removed.status_code
        assert [] == suppression.entries()

    def test_scoped_suppressions_are_shown_and_removed_by_scope(
        self, settings: Settings, redis_client: redis.Redis
    ) -> None:
        """A one-click unsubscribe's entry shows its scope; removing it leaves the global one."""
        suppression = SuppressionList(redis_client, settings.names)
        suppression.add("ann@example.org", "bounced")
        suppression.add_scoped("ann@example.org", Scope.parse("example.com/news"), "unsubscribed")
        with dashboard(settings) as server, httpx.Client(base_url=server.url) as client:
            page = client.get("/suppression", params={"q": "ann"}).text
            csrf = _csrf(client, "/suppression")
            removed = client.post(
                "/suppression/remove",
                data={"csrf": csrf, "address": "ann@example.org", "scope": "example.com/news"},
            )
        assert "<td>example.com/news</td>" in page
        assert "<td>everything</td>" in page
        assert 303 == removed.status_code
        assert [] == suppression.scoped_entries()
        assert ["ann@example.org"] == [entry.address for entry in suppression.entries()]

    def test_limits_show_every_bucket_and_explain_a_pasted_job(self, settings: Settings) -> None:
        limited = settings.model_copy(
            update={
                "rate_limit": Rate.parse("50/s"),
                "domain_limits": {"example.org": Rate.parse("5/s")},
            }
        )
        job = make_job(1).to_wire().decode()
        with dashboard(limited) as server, httpx.Client(base_url=server.url) as client:
            page = client.get("/limits").text
            csrf = _csrf(client, "/limits")
            explained = client.post("/limits/explain", data={"csrf": csrf, "job": job})
            invalid = client.post("/limits/explain", data={"csrf": csrf, "job": '{"to": []}'})
        assert "<td>global</td>" in page
        assert "<td>domain example.org</td>" in page
        assert "example.org" in page.split("Adaptive")[1]
        assert 200 == explained.status_code
        assert "job job-1 (lane transactional)" in explained.text
        assert 400 == invalid.status_code
        assert "not a valid job" in invalid.text

    def test_the_events_stream_sends_what_a_worker_publishes(
        self, settings: Settings, producer: Producer
    ) -> None:
        """Server-sent events: a delivered job's event arrives as an escaped list item."""
        with (
            dashboard(settings) as server,
            httpx.Client(base_url=server.url, timeout=30) as client,
            client.stream("GET", "/events/stream") as stream,
        ):
            lines = stream.iter_lines()
            assert ": following" == next(lines)
            producer.publish(make_job(7, subject="<b>hi</b>"))
            WorkerThread(settings)
            deadline = time.monotonic() + 30
            data = ""
            while time.monotonic() < deadline and "job-7" not in data:
                line = next(lines)
                if line.startswith("data: "):
                    data = line
        assert data.startswith('data: <li class="event">')
        assert "job-7" in data
        assert "delivered" in data

    def test_the_delivery_report_by_domain_is_mailfleet_report_s(
        self, settings: Settings, producer: Producer, smtp_server: SmtpSink
    ) -> None:
        """What a worker sent is counted, and shown per recipient domain with its rates."""
        with dashboard(settings) as server, httpx.Client(base_url=server.url) as client:
            empty = client.get("/events").text
            producer.publish_many([make_job(n) for n in range(3)])
            WorkerThread(settings)
            assert wait_until(lambda: smtp_server.count == 3, 30)
            assert wait_until(lambda: 'id="report"' in client.get("/events").text, 15)
            page = client.get("/events").text
        assert "Nothing counted yet" in empty
        row = re.search(r"<tr><td>example\.org</td>(.*?)</tr>", page, re.DOTALL)
        assert row is not None
        assert '<td class="num">3</td>' in row.group(1)  # sent


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """httpx must talk to the local dashboard directly, whatever proxy the machine sets."""
    for variable in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(variable, raising=False)
