"""The issue's "done when", in a real browser against a real Kodify: an administrator opens
the shipped fix template for Python, edits it, previews the messages a sample request
gets (the edited text and the sample code), saves it, and the next action request made
through the gateway is sent upstream with the edited text.

Chromium is Debian's (``make install-dev``); Playwright only drives it.  With Redis the
server runs two uvicorn workers and the test waits until both applied the change; on the
SQLite smoke run the server has a database file of its own and one worker, and every
change goes through the browser, so the test works the same on both.
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from accounts.tests.test_console_browser import ADMIN, PASSWORD, create_administrator
from gateway.actions.languages import SAMPLES
from gateway.tests.fake_upstream import FakeUpstream, FakeUpstreamServer
from kodify_site.testing import (
    CHROMIUM,
    WAIT_S,
    KodifyServer,
    chromium,
    console_applied,
    console_version,
)

pytestmark = [
    pytest.mark.smoke,
    # On PostgreSQL the server shares the test database: the administrator created here
    # must be committed for it to see.
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium: run make install-dev"),
    pytest.mark.skipif(
        bool(os.environ.get("REDIS_URL")) and not os.environ.get("DB_URL"),
        reason="Redis without PostgreSQL: the server and the test would share no database",
    ),
]

WORKERS = 2 if os.environ.get("REDIS_URL") else 1
EDITED = "Browser-edited rules for {language}: answer with the fixed code in one block."
SHIPPED_START = "You are an expert Python developer reviewing code for bugs."
PYTHON_COLUMN = 1  # the grid's columns: generic, then the known languages


@pytest.fixture
def fake() -> Iterator[FakeUpstreamServer]:
    server = FakeUpstreamServer(FakeUpstream()).start()
    yield server
    server.stop()


def log_in(page: Page, url: str) -> None:
    """The console's login, whichever look the console has (its theme's buttons)."""
    page.goto(url + "/admin/")
    page.fill("#id_username", ADMIN)
    page.fill("#id_password", PASSWORD)
    page.press("#id_password", "Enter")
    expect(page).not_to_have_url(re.compile(r"/login/"))


def system_sent(server: KodifyServer, fake: FakeUpstream) -> str:
    """The system prompt sent upstream for a python fix requested through the gateway."""
    marker = uuid.uuid4().hex
    body = {"code": f"x = 1  # {marker}", "language": "python"}
    answer = httpx.post(server.url + "/v1/actions/fix", json=body, timeout=WAIT_S)
    assert answer.status_code == 200, answer.text
    [sent] = [r.body for r in fake.records if marker in str(r.body.get("messages"))]
    return str(sent["messages"][0]["content"])


def test_an_administrator_edits_previews_and_saves_a_template(
    kodify_server: Any, fake: FakeUpstreamServer, tmp_path: Path
) -> None:
    env = {"KODIFY_UPSTREAMS": fake.url, "KODIFY_CONFIG_POLL_INTERVAL": "0.2"}
    server: KodifyServer = kodify_server(env, workers=WORKERS)
    create_administrator(tmp_path / "server0", env)  # kodify_server names its first "server0"
    assert system_sent(server, fake.fake).startswith(SHIPPED_START)

    with chromium() as browser:
        context = browser.new_context()
        page = context.new_page()
        page.set_default_timeout(15_000)
        try:
            log_in(page, server.url)
            before = console_version(server, WORKERS)
            edit_preview_and_save(page, server)
        except BaseException:
            with contextlib.suppress(Exception):
                page.screenshot(path=str(tmp_path / "failure-page.png"), full_page=True)
                print(f"screenshot in {tmp_path}; server log:\n{server.log()}")
            raise
        finally:
            context.close()

    assert console_applied(server, WORKERS, after=before)
    for _ in range(4):  # each on a connection of its own: whichever worker takes it
        assert system_sent(server, fake.fake) == EDITED.format(language="Python")


def edit_preview_and_save(page: Page, server: KodifyServer) -> None:
    page.goto(server.url + "/admin/gateway/actiontemplate/")
    fix = page.locator("#template-grid tr[data-action=fix] td").nth(PYTHON_COLUMN)
    expect(fix).to_have_text("shipped")
    fix.get_by_role("link").click()

    # A new template, from the shipped text, with the Python sample to preview it on;
    # another language chosen, its shipped text and sample come (nothing was typed yet).
    assert page.input_value("textarea[name=system]").startswith(SHIPPED_START)
    assert page.input_value("#preview-code") == SAMPLES["python"].code
    page.select_option("select[name=language]", "go")
    expect(page.locator("#preview-code")).to_have_value(SAMPLES["go"].code)
    assert page.input_value("textarea[name=system]").startswith("You are an expert Go developer")
    page.select_option("select[name=language]", "python")
    expect(page.locator("#preview-code")).to_have_value(SAMPLES["python"].code)
    assert page.input_value("textarea[name=system]").startswith(SHIPPED_START)
    page.fill("textarea[name=system]", EDITED)

    page.click("#preview-button")
    preview = page.locator("#template-preview")
    expect(preview.locator(".preview-message h3")).to_have_text(["system", "user"])
    expect(preview.locator("pre").nth(0)).to_have_text(EDITED.format(language="Python"))
    expect(preview.locator("pre").nth(1)).to_contain_text(
        "def mean(values: list[float]) -> float:\n    return sum(values) / len(values)"
    )
    expect(preview).to_contain_text("File: stats/mean.py")

    # A sample of one's own; a broken template says why, in the preview.
    page.fill("#preview-code", "print('my own sample')")
    page.click("#preview-button")
    expect(preview.locator("pre").nth(1)).to_contain_text("print('my own sample')")
    page.fill("textarea[name=system]", EDITED + " {oops")
    page.click("#preview-button")
    expect(preview).to_contain_text("The system prompt has a single { or }")
    page.fill("textarea[name=system]", EDITED)

    page.click("[name=_save]")
    grid = page.locator("#template-grid tr[data-action=fix] td").nth(PYTHON_COLUMN)
    expect(grid).to_have_text("console")
