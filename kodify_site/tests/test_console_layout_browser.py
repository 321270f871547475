"""The console on a laptop's screen (1366x768) and a phone's (390x844), in a real browser
against a real Kodify in dummy mode: every page an administrator works with opens, fits
the screen's width and shows the red "API open" banner; the upstream list shows its Health
and Models columns, with its buttons clear of its help text; and an auditor's home and
side bar offer only what an auditor may read.

Chromium is Debian's (``make install-dev`` installs it); Playwright only drives it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from django.db import transaction
from playwright.sync_api import Locator, Page, expect

from gateway.tests.fake_upstream import FakeUpstreamServer
from kodify_site.testing import CHROMIUM, KodifyServer, chromium, seed_server

ADMIN = "root"
AUDITOR = "audrey"
TIMEOUT_MS = 15_000
LAPTOP = {"width": 1366, "height": 768}
PHONE = {"width": 390, "height": 844}

# (page, address): what an administrator opens the console for.
ADMIN_PAGES = [
    ("home", "/admin/"),
    ("API users", "/admin/accounts/apiuser/"),
    ("tokens", "/admin/accounts/apitoken/"),
    ("upstreams", "/admin/gateway/upstreamserver/"),
    ("models", "/admin/gateway/servedmodel/"),
    ("settings", "/admin/gateway/gatewaysetting/"),
    ("journal", "/journal/"),
    ("dashboard", "/journal/dashboard/"),
    ("connect", "/admin/connect/"),
]
# What an auditor may read (accounts.roles, and the journal's grants).
AUDITOR_READS = {
    "accounts.apiuser",
    "accounts.apitoken",
    "accounts.auditevent",
    "journal.list",
    "journal.dashboard",
    "journal.live",
    # The action templates' app grants auditors a read-only view of them when it is there.
    "gateway.actiontemplate",
    "gateway.actionsetting",
}
# Side bar entries that only administrators have: each leads to writing.
ADMIN_ONLY_ENTRIES = ("Console accounts", "Upstreams", "Models", "Gateway settings")

pytestmark = [
    pytest.mark.smoke,
    # On PostgreSQL the server shares the test database: what is seeded must be committed.
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium: run make install-dev"),
]


def seed() -> None:
    """Both console accounts, an API user (and its audit event) and a journal row, with
    the ORM of whichever process runs it."""
    from accounts import services
    from accounts.roles import ADMINISTRATORS, AUDITORS
    from journal.tests.entries import console_account, make_entry

    console_account(ADMIN, ADMINISTRATORS, is_superuser=True)
    console_account(AUDITOR, AUDITORS)
    services.create_user(username="layout-dev", full_name="Layout Developer")
    # In a transaction of its own: the journal's counters lock their rows while they add.
    with transaction.atomic():
        make_entry(
            request_id="layout-seed",
            created_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1),
        )


def test_the_console_fits_a_laptop_and_a_phone_and_auditors_see_what_they_may_read(
    kodify_server: Any, fake_upstream: FakeUpstreamServer, tmp_path: Path
) -> None:
    # Dummy mode (no MTSAI_AUTH, no VLLM_API_KEY): every page must say the API is open.
    env = {"KODIFY_UPSTREAMS": fake_upstream.url, "LOGS": "true"}
    server = kodify_server(env)
    seed_server(server, env, seed)
    with chromium() as browser:
        for viewport in (LAPTOP, PHONE):
            context = browser.new_context(viewport=viewport)
            page = context.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            try:
                log_in(page, server.url, ADMIN)
                walk_the_administrators_pages(page, server.url, viewport["width"])
            except BaseException:
                keep_a_screenshot(page, tmp_path / f"failure-{viewport['width']}.png", server)
                raise
            finally:
                context.close()
        context = browser.new_context(viewport=LAPTOP)
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        try:
            log_in(page, server.url, AUDITOR)
            an_auditor_sees_what_an_auditor_may_read(page, server.url)
        except BaseException:
            keep_a_screenshot(page, tmp_path / "failure-auditor.png", server)
            raise
        finally:
            context.close()
    log = server.log()
    assert "Traceback" not in log, log[-3000:]


def keep_a_screenshot(page: Page, path: Path, server: KodifyServer) -> None:
    with contextlib.suppress(Exception):
        page.screenshot(path=str(path), full_page=True)
        print(f"screenshot {path} of {page.url}; server log:\n{server.log()[-3000:]}")


def log_in(page: Page, url: str, username: str) -> None:
    from journal.tests.entries import PASSWORD

    page.goto(url + "/admin/login/")
    expect(page.locator("#kodify-api-open")).to_be_visible()  # before logging in, too
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("#login-form [type=submit]")
    expect(page).to_have_url(url + "/admin/")
    expect(page.locator("#nav-sidebar")).to_contain_text(username)  # the account's menu


def within_width(page: Page, locator: Locator, width: int) -> None:
    """Visible, and wholly inside the window's width (not beyond its right edge)."""
    expect(locator).to_be_visible()
    box = locator.bounding_box()
    assert box is not None
    assert box["x"] >= 0 and box["x"] + box["width"] <= width, (box, width)


def apart(first: Locator, second: Locator) -> None:
    """Two elements that do not cover each other."""
    a, b = first.bounding_box(), second.bounding_box()
    assert a is not None and b is not None
    overlap_x = a["x"] < b["x"] + b["width"] and b["x"] < a["x"] + a["width"]
    overlap_y = a["y"] < b["y"] + b["height"] and b["y"] < a["y"] + a["height"]
    assert not (overlap_x and overlap_y), (a, b)


def walk_the_administrators_pages(page: Page, url: str, width: int) -> None:
    for name, path in ADMIN_PAGES:
        response = page.goto(url + path)
        assert response is not None and response.ok, (name, response and response.status)
        # The page's title in the header, and the red banner of dummy mode.
        expect(page.locator("#header-inner h1")).to_be_visible()
        expect(page.locator("#kodify-api-open")).to_be_visible()
        expect(page.locator("#kodify-api-open")).to_contain_text("The API is open")
        # Nothing wider than the window: a page is read without scrolling sideways.
        scroll_width = page.evaluate("document.documentElement.scrollWidth")
        assert scroll_width <= width, (name, scroll_width, width)
        if name == "home":
            the_home_groups_the_pages_by_task(page, width)
        elif name == "upstreams":
            the_upstream_list_shows_health_and_models(page, width)
        elif name == "settings":
            the_settings_refuse_what_cannot_work(page)


def the_settings_refuse_what_cannot_work(page: Page) -> None:
    """A value the gateway could not serve is refused with its reason, and not saved."""
    page.fill("#id_max_n", "999")
    page.locator("#submit-row [name=_save]").click()
    expect(page.locator("body")).to_contain_text("At most 16 answers per request")
    expect(page.locator("#id_max_n")).to_have_value("999")  # the form, not a saved page


def the_home_groups_the_pages_by_task(page: Page, width: int) -> None:
    for group in ("people", "gateway", "journal", "system"):
        expect(page.locator(f"#home-group-{group}")).to_be_visible()
    expect(page.locator("#home-group-people")).to_contain_text("Console accounts")
    expect(page.locator("#home-group-gateway")).to_contain_text("Upstreams")
    sidebar = page.locator("#nav-sidebar")
    if width < 1280:
        # On a phone the side bar waits behind its button in the header.
        expect(sidebar).to_be_hidden()
        toggle = page.locator("#header-inner .material-symbols-outlined:visible")
        toggle.filter(has_text="dock_to_right").click()
    for title in ("People", "Gateway", "Journal", "System"):
        expect(sidebar.get_by_role("heading", name=title)).to_be_visible()
    expect(sidebar.get_by_role("link", name="Audit trail")).to_be_visible()


def the_upstream_list_shows_health_and_models(page: Page, width: int) -> None:
    if width >= 1024:
        # A table: its headers, the last ones included, within the window.
        within_width(page, page.locator("#result_list th.column-health"), width)
        within_width(page, page.locator("#result_list th.column-served_models"), width)
    else:
        # A phone: each row is a card of labelled lines.
        row = page.locator("#result_list tbody tr.data-row").first
        within_width(page, row.locator("td.field-health"), width)
        within_width(page, row.locator("td.field-served_models"), width)
    rule = page.locator("#upstream-source-rule")
    apart(rule, page.locator("#check-health-form"))
    apart(rule, page.locator("a.addlink[href$='/add/']"))


def an_auditor_sees_what_an_auditor_may_read(page: Page, url: str) -> None:
    tasks = page.locator("#kodify-tasks")
    expect(tasks).to_be_visible()
    shown = set(tasks.locator("[data-nav]").evaluate_all("els => els.map(e => e.dataset.nav)"))
    assert shown and shown <= AUDITOR_READS, shown - AUDITOR_READS
    assert {"accounts.auditevent", "journal.list"} <= shown
    expect(tasks.locator("a.addlink")).to_have_count(0)

    sidebar = page.locator("#nav-sidebar")
    for title in ADMIN_ONLY_ENTRIES:
        expect(sidebar.get_by_role("link", name=title, exact=True)).to_have_count(0)
    # Whatever the People and Gateway groups still show the auditor opens read-only.
    for group in ("people", "gateway"):
        links = page.locator(f"#home-group-{group} a.kodify-task-link")
        addresses = links.evaluate_all("els => els.map(e => e.getAttribute('href'))")
        for address in addresses:
            response = page.goto(url + address)
            assert response is not None and response.ok, (address, response and response.status)
            expect(page.locator("a.addlink")).to_have_count(0)
            expect(page.locator("[name=_save]")).to_have_count(0)
        page.goto(url + "/admin/")

    # The audit trail is readable: the API user's creation is in it.
    sidebar.get_by_role("link", name="Audit trail").click()
    expect(page.locator("#result_list tbody tr.data-row").first).to_contain_text("user.created")
