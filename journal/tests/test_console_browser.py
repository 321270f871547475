"""The issue's "done when", in a real browser against a real Kodify: an auditor finds
requests by filter and search, reads one, exports the list and watches a new request
arrive live, made through the gateway with the journal on.

Chromium is Debian's (``make install-dev`` installs it); Playwright only drives it.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from accounts.roles import AUDITORS
from gateway.tests.fake_upstream import FakeUpstreamServer
from kodify_site.testing import CHROMIUM, KodifyServer, chromium, seed_server

AUDITOR = "audrey"
TIMEOUT_MS = 15_000

pytestmark = [
    pytest.mark.smoke,
    # On PostgreSQL the server shares the test database: what is seeded must be committed.
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium: run make install-dev"),
]


def seed() -> None:
    """The auditor and three journal rows, with the ORM of whichever process runs it."""
    from journal.tests.entries import console_account, make_entry, make_event

    console_account(AUDITOR, AUDITORS)
    now = dt.datetime.now(dt.UTC)
    invoice = make_entry(
        request_id="seed-invoice",
        created_at=now - dt.timedelta(minutes=3),
        username="ann",
        model="m-a",
        request_body='{"messages": [{"role": "user", "content": "sum the invoice"}]}',
        response_text="The invoice total is 42",
    )
    make_event(invoice, kind="view")
    make_event(invoice, kind="select", created_at=invoice.created_at + dt.timedelta(seconds=2))
    make_entry(
        request_id="seed-crash",
        created_at=now - dt.timedelta(minutes=2),
        username="bob",
        model="m-b",
        status=500,
        error="upstream crashed",
        response_text="",
    )
    make_entry(
        request_id="seed-plain",
        created_at=now - dt.timedelta(minutes=1),
        username="ann",
        model="m-a",
        client_name="jetbrains",
        response_text="hello world",
    )


def test_an_auditor_finds_reads_exports_and_watches_requests(
    kodify_server: Any, fake_upstream: FakeUpstreamServer, tmp_path: Path
) -> None:
    env = {
        "KODIFY_UPSTREAMS": fake_upstream.url,
        "LOGS": "true",
        "KODIFY_JOURNAL_FLUSH_SECONDS": "0.05",
    }
    server = kodify_server(env)
    seed_server(server, env, seed)
    with chromium() as browser:
        context = browser.new_context(accept_downloads=True)
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        log_in(page, server.url)
        find_requests(page, tmp_path)
        read_one(page)
        watch_live(page, server, tmp_path)
        context.close()
    log = server.log()
    assert "Traceback" not in log, log[-3000:]


def log_in(page: Page, url: str) -> None:
    from journal.tests.entries import PASSWORD

    page.goto(url + "/admin/")
    page.fill("#id_username", AUDITOR)
    page.fill("#id_password", PASSWORD)
    page.click("#login-form [type=submit]")
    expect(page.locator("#nav-sidebar")).to_contain_text(AUDITOR)  # the account's menu


def listed(page: Page) -> list[str]:
    rows = page.locator("#journal-rows tbody tr[data-request-id]")
    return [str(rows.nth(i).get_attribute("data-request-id")) for i in range(rows.count())]


def find_requests(page: Page, tmp_path: Path) -> None:
    page.locator("#home-group-journal").get_by_role("link", name="Requests").click()
    rows = page.locator("#journal-rows tbody tr[data-request-id]")
    expect(rows).to_have_count(3)
    assert listed(page) == ["seed-plain", "seed-crash", "seed-invoice"]
    expect(page.locator("#journal-summary")).to_contain_text("3 requests in the journal")

    page.select_option("#id_model", "m-b")
    page.click("#journal-filter-submit")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("500")
    assert listed(page) == ["seed-crash"]

    page.click("#journal-filter-reset")
    expect(rows).to_have_count(3)
    page.fill("#id_q", "invoice")
    page.click("#journal-filter-submit")
    expect(rows).to_have_count(1)
    assert listed(page) == ["seed-invoice"]
    expect(page.locator("#id_q")).to_have_value("invoice")  # the form keeps the search
    page.screenshot(path=str(tmp_path / "journal-list.png"), full_page=True)

    # The export holds what the list shows: the same filters, streamed by the server.
    with page.expect_download() as download_info:
        page.click("#journal-export")
    download = download_info.value
    assert download.suggested_filename.startswith("journal-")
    exported = list(csv.DictReader(io.StringIO(Path(download.path()).read_text("utf-8-sig"))))
    assert [row["request_id"] for row in exported] == ["seed-invoice"]
    assert exported[0]["response_text"] == "The invoice total is 42"


def read_one(page: Page) -> None:
    page.locator('#journal-rows tr[data-request-id="seed-invoice"] a').first.click()
    expect(page.locator("#journal-response-text")).to_have_text("The invoice total is 42")
    expect(page.locator("#journal-request-body")).to_contain_text('"content": "sum the invoice"')
    expect(page.locator("#journal-events tbody tr")).to_have_count(2)
    expect(page.locator("#journal-events")).to_contain_text("Accepted")


def watch_live(page: Page, server: KodifyServer, tmp_path: Path) -> None:
    page.locator("#journal-tabs").get_by_role("link", name="Live").click()
    status = page.locator("#live-status")
    expect(status).to_have_attribute("data-state", "open")
    # The page starts with the latest rows; the new request must arrive over the socket.
    expect(page.locator('#live-rows tr[data-request-id="seed-plain"]')).to_have_count(1)

    tag = uuid.uuid4().hex
    response = httpx.post(
        server.url + "/v1/chat/completions",
        json={"model": "fake-model", "messages": [{"role": "user", "content": tag}]},
        timeout=30,
    )
    assert response.status_code == 200
    request_id = response.headers["x-request-id"]
    arrived = page.locator(f'#live-rows tbody tr[data-request-id="{request_id}"]')
    expect(arrived).to_have_count(1)
    expect(arrived).to_contain_text("fake-model")
    expect(arrived).to_contain_text("/v1/chat/completions")
    # On top, and a link to its page.
    assert page.locator("#live-rows tbody tr").first.get_attribute("data-request-id") == request_id
    page.screenshot(path=str(tmp_path / "journal-live.png"), full_page=True)
    arrived.locator("a").click()
    expect(page.locator("#journal-request-body")).to_contain_text(tag)
