"""The dashboard in a real browser (playwright with Debian's chromium) against real servers
and a real worker: live depths, a 550 replayed from the table, purge, escaping."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from mailfleet.dashboard.serve import DashboardThread
from mailfleet.producer.devtools.sink import SmtpSink
from mailfleet.producer.publisher import Producer
from mailfleet.shared.settings import Settings
from tests.integration.dashboard_helpers import (
    chromium_path,
    dashboard,
    launch_args,
    publish_dead_letters,
    screenshot_dir,
)
from tests.integration.helpers import WorkerThread, make_job, wait_until
from tests.integration.relays import ScriptedReplies

WAIT_MS = 30_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium_path(), args=launch_args())
        yield launched
        launched.close()


@pytest.fixture
def server(settings: Settings) -> Iterator[DashboardThread]:
    with dashboard(settings) as running:
        yield running


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    yield context.new_page()
    context.close()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    return Path(screenshot_dir(str(tmp_path)))


def _depth(page: Page, queue: str) -> object:
    return page.locator(f'td[data-depth="{queue}"]')


class TestOverview:
    def test_queue_depths_change_as_jobs_flow(
        self,
        settings: Settings,
        server: DashboardThread,
        page: Page,
        producer: Producer,
        smtp_server: SmtpSink,
        shots: Path,
    ) -> None:
        """30 jobs wait in their lane; a worker starts; the page (not reloaded) counts down."""
        producer.publish_many([make_job(n) for n in range(30)])
        lane = f"{settings.namespace}.transactional"
        page.goto(server.url)
        expect(page.locator(f'td[data-depth="{lane}"]')).to_have_text("30", timeout=WAIT_MS)
        WorkerThread(settings)
        expect(page.locator(f'td[data-depth="{lane}"]')).to_have_text("0", timeout=WAIT_MS)
        assert wait_until(lambda: smtp_server.count == 30, 30)
        expect(page.locator(".ok").first).to_have_text("ready", timeout=WAIT_MS)
        page.screenshot(path=str(shots / "dashboard-overview.png"), full_page=True)
        assert (shots / "dashboard-overview.png").stat().st_size > 10_000


class TestDeadLetters:
    def test_a_550_dead_letter_is_replayed_from_the_table_after_the_relay_is_fixed(
        self,
        settings: Settings,
        server: DashboardThread,
        page: Page,
        producer: Producer,
        smtp_server: SmtpSink,
        replies: ScriptedReplies,
        shots: Path,
    ) -> None:
        replies.script("rcpt1@example.org", "550 5.7.1 rejected by policy")
        WorkerThread(settings)
        producer.publish(make_job(1))
        producer.publish(make_job(2))  # delivered: the table shows only the refused one
        row = page.locator("table.letters tbody tr.letter")

        def listed() -> bool:
            page.goto(f"{server.url}dead-letters")
            return row.count() == 1

        assert wait_until(listed, 30, interval=0.5)
        expect(row).to_contain_text("job-1")
        expect(row).to_contain_text("550 5.7.1 rejected by policy")
        page.screenshot(path=str(shots / "dashboard-dead-letters.png"), full_page=True)

        replies.script("rcpt1@example.org", None)  # the relay is fixed
        page.get_by_text("Replay these…").click()
        expect(page.locator("h1")).to_contain_text("dry run")
        expect(page.locator("ul.ids")).to_have_text("job-1")
        page.locator("#confirm").click()
        expect(page.locator("#result")).to_contain_text("replayed 1")
        assert wait_until(lambda: "job-1" in {m.job_id for m in smtp_server.messages}, 30)
        page.goto(f"{server.url}dead-letters")
        expect(page.locator(".empty")).to_have_text("No dead letters match.")

    def test_purge_asks_deletes_exactly_the_letters_shown_and_keeps_a_newcomer(
        self, settings: Settings, server: DashboardThread, browser: Browser
    ) -> None:
        """Without JavaScript: forms alone. A letter arriving during the question stays."""
        publish_dead_letters(settings, [make_job(1), make_job(2)])
        context = browser.new_context(java_script_enabled=False)
        page = context.new_page()
        try:
            page.goto(f"{server.url}dead-letters")
            page.get_by_text("Purge these…").click()
            expect(page.locator("ul.ids li")).to_have_text(["job-1", "job-2"])
            expect(page.locator("#confirm")).to_have_text("Delete 2 for good")
            publish_dead_letters(settings, [make_job(3)])  # dies while the operator reads
            page.locator("#confirm").click()
            expect(page.locator("#result")).to_have_text("purged 2, left 1")
            page.goto(f"{server.url}dead-letters")
            expect(page.locator("table.letters tbody tr.letter")).to_have_count(1)
            expect(page.locator("table.letters tbody tr.letter")).to_contain_text("job-3")
        finally:
            context.close()

    def test_a_subject_with_a_script_tag_renders_as_text(
        self, settings: Settings, server: DashboardThread, page: Page
    ) -> None:
        publish_dead_letters(settings, [make_job(1, subject="<script>alert(1)</script>")])
        dialogs: list[str] = []
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        page.goto(f"{server.url}dead-letters/letter?id=job-1")
        expect(page.locator("[data-subject]")).to_have_text("<script>alert(1)</script>")
        assert 0 == page.locator("main script").count()
        page.goto(f"{server.url}dead-letters")
        page.locator("tr.detail summary").first.click()  # the row unfolds: the same job
        expect(page.locator("tr.detail pre.job")).to_contain_text("<script>alert(1)</script>")
        assert [] == dialogs


def test_chromium_is_debian_s(browser: Browser) -> None:
    """The tests drive the machine's chromium, not a browser playwright downloaded."""
    assert os.path.realpath(chromium_path()).startswith("/usr/")
    assert browser.version
