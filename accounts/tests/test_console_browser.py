"""The issue's "done when", in a real browser against a real Kodify: a new administrator
creates a user, issues a token, calls the API with it through the OpenAI SDK, revokes it
in the console and sees the next call refused.

Chromium is Debian's (``make install-dev`` installs it); Playwright only drives it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import openai
import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import Browser, Page, expect

from gateway.tests.fake_upstream import FakeUpstreamServer
from kodify_site.testing import CHROMIUM, REPO, chromium, server_environment

PER_USER = {"MTSAI_AUTH": "true", "AUTH_TYPE": "DB"}
ADMIN = "root"
PASSWORD = "browser-test-password-42"
API_USER = "browser-dev"
MESSAGES: Any = [{"role": "user", "content": "hello"}]
# The server trusts what it read about a token for at most 1 s (KODIFY_AUTH_CACHE_SECONDS).
REFUSAL_DEADLINE_S = 5.0

pytestmark = [
    pytest.mark.smoke,
    # On PostgreSQL the server shares the test database: the administrator created here
    # must be committed for it to see.
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium: run make install-dev"),
]


def create_administrator(server_dir: Path, env: dict[str, str]) -> None:
    if os.environ.get("DB_URL"):
        get_user_model().objects.create_superuser(ADMIN, password=PASSWORD)
        return
    # On SQLite the server has a database file of its own, in its data folder.
    assert (server_dir / "data" / "kodify.sqlite3").exists()
    subprocess.run(
        [sys.executable, str(REPO / "manage.py"), "createsuperuser", "--noinput"],
        env={
            **server_environment(server_dir, env),
            "DJANGO_SUPERUSER_USERNAME": ADMIN,
            "DJANGO_SUPERUSER_EMAIL": "root@example.com",
            "DJANGO_SUPERUSER_PASSWORD": PASSWORD,
        },
        cwd=server_dir,
        check=True,
        capture_output=True,
        timeout=60,
    )


def log_in(page: Page, url: str) -> None:
    page.goto(url + "/admin/")
    page.fill("#id_username", ADMIN)
    page.fill("#id_password", PASSWORD)
    page.click("#login-form [type=submit]")
    expect(page.locator("#nav-sidebar")).to_contain_text(ADMIN)  # the account's menu


def add_api_user(page: Page) -> None:
    page.locator("#home-group-people [data-nav='accounts.apiuser'] a.addlink").click()
    page.fill("#id_username", API_USER)
    page.fill("#id_full_name", "Browser Developer")
    page.click("[name=_continue]")
    expect(page.locator(".messagelist")).to_contain_text("was added successfully")


def issue_token(page: Page, screenshot: Path) -> str:
    page.click("#issue-token-link")
    page.fill("#id_name", "playwright")
    page.click("input[name=_issue]")
    expect(page.locator("#token-once-note")).to_contain_text("you will not see it again")
    token = page.input_value("#kodify-token")
    page.click("#copy-token")
    expect(page.locator("#copy-status")).to_have_text("Copied to the clipboard.")
    assert page.evaluate("navigator.clipboard.readText()") == token
    page.screenshot(path=str(screenshot), full_page=True)
    assert "kdf_" not in page.url and token not in page.url
    return token


def revoke_token(page: Page) -> None:
    page.click(f"text=Back to {API_USER}")
    # The token's own page, linked from the user's list of tokens.
    page.locator("[data-inline-type=tabular] a[href$='/change/']").first.click()
    page.click("#revoke-token-link")
    page.click("input[value='Yes, revoke it']")
    expect(page.locator(".messagelist")).to_contain_text("revoked")
    expect(page.locator(".field-state")).to_contain_text("revoked")


def test_administrator_issues_uses_and_revokes_a_token_in_a_browser(
    kodify_server: Any, fake_upstream: FakeUpstreamServer, tmp_path: Path
) -> None:
    env = {"KODIFY_UPSTREAMS": fake_upstream.url, **PER_USER}
    server = kodify_server(env)
    create_administrator(tmp_path / "server0", env)  # kodify_server names its first "server0"
    with chromium() as browser:
        use_the_console(browser, server.url, tmp_path / "token-page.png")


def use_the_console(browser: Browser, url: str, screenshot: Path) -> None:
    context = browser.new_context(permissions=["clipboard-read", "clipboard-write"])
    page = context.new_page()
    page.set_default_timeout(15_000)
    log_in(page, url)
    add_api_user(page)
    token = issue_token(page, screenshot)
    # The page tells where to send it.
    expect(page.locator(".kodify-token-usage")).to_contain_text(url + "/v1")

    sdk = openai.OpenAI(base_url=url + "/v1", api_key=token, max_retries=0)
    completion = sdk.chat.completions.create(model="fake-model", messages=MESSAGES)
    assert completion.choices[0].message.content

    revoke_token(page)
    deadline = time.monotonic() + REFUSAL_DEADLINE_S
    refused: openai.AuthenticationError | None = None
    while refused is None and time.monotonic() < deadline:
        try:
            sdk.chat.completions.create(model="fake-model", messages=MESSAGES)
        except openai.AuthenticationError as exc:
            refused = exc
    assert refused is not None, f"still accepted {REFUSAL_DEADLINE_S} s after revoking"
    assert "revoked" in str(refused)

    # The audit trail, as the administrator sees it.
    page.goto(url + "/admin/accounts/auditevent/")
    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(3)
    for action in ("user.created", "token.issued", "token.revoked"):
        expect(rows.filter(has_text=action)).to_contain_text(ADMIN)
    assert token not in page.content()
    context.close()
