"""The issue's "done when", in a real browser against a real Kodify: an administrator adds
a second upstream in the console and traffic spreads to it without a restart; disabling
it there takes it out of the traffic; a console setting (MAX_N) applies to every worker.

Chromium is Debian's (``make install-dev`` installs it); Playwright only drives it.  With
Redis the server runs two uvicorn workers: a console write is handled by one of them, and
the other must follow too; each worker's ``/health`` says which state of the console it
has applied, so the test waits for that, not for a lucky batch of requests.  On
PostgreSQL+Redis the server shares the test run's database and cache; on the SQLite smoke
run it has a database file of its own, and every change goes through the browser, so the
test works the same on both.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.db import connections
from playwright.sync_api import Browser, Locator, Page, expect

from accounts.tests.test_console_browser import create_administrator, log_in
from gateway import services
from gateway.models import UpstreamServer
from gateway.tests.fake_upstream import FakeUpstream, FakeUpstreamServer
from kodify_site.testing import (
    CHROMIUM,
    WAIT_S,
    KodifyServer,
    chromium,
    console_applied,
    console_version,
    every_worker,
)

pytestmark = [
    pytest.mark.smoke,
    # On PostgreSQL the server shares the test database: the administrator created here
    # must be committed for it to see.
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium: run make install-dev"),
    pytest.mark.skipif(
        bool(os.environ.get("REDIS_URL")) and not os.environ.get("DB_URL"),
        reason="Redis without PostgreSQL: the server's health checks would need a Celery "
        "worker on its own SQLite file",
    ),
]

MODEL = "shared-model"
BODY: dict[str, Any] = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
SECOND_NAME = "second-replica"
SECOND_KEY = "sk-browser-upstream-key-7f3a9c"  # write-only: never shown back
BATCH = 8  # requests per batch, each on a new connection
# With Redis the workers share the console's change stamps, and two workers prove that a
# change reaches each of them.  Without it each worker's stamps are its own (an in-memory
# cache), so one worker alone can tell when it has applied a change.
WORKERS = 2 if os.environ.get("REDIS_URL") else 1


@pytest.fixture
def fakes() -> Iterator[tuple[FakeUpstreamServer, FakeUpstreamServer]]:
    first = FakeUpstreamServer(FakeUpstream(models=(MODEL,))).start()
    second = FakeUpstreamServer(FakeUpstream(models=(MODEL,))).start()
    try:
        yield first, second
    finally:
        first.stop()
        second.stop()
        # The browser put everything back already, unless the test failed half-way.  On
        # PostgreSQL the rows are the shared test database's; on SQLite the server's
        # file dies with tmp_path and these reach only the test process's own database.
        UpstreamServer.objects.filter(url=second.url).delete()
        services.update_gateway_setting(max_n=None)


@contextlib.contextmanager
def health_checks_stored() -> Iterator[None]:
    """With Redis, the server's health checks are Celery beat's (none runs in the test):
    run the task's body here, as its worker would, so that the console shows them.
    Without Redis each server process runs and stores them itself (eager Celery)."""
    if not os.environ.get("REDIS_URL"):
        yield
        return
    stop = threading.Event()

    def beat() -> None:
        try:
            while not stop.is_set():
                services.check_upstreams()
                stop.wait(0.5)  # the schedule's period, not a synchronisation
        finally:
            connections.close_all()

    thread = threading.Thread(target=beat, name="stand-in-celery-beat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(10)


def chat(url: str, **extra: Any) -> int:
    """One chat request on a connection of its own; its status."""
    return httpx.post(
        url + "/v1/chat/completions", json={**BODY, **extra}, timeout=WAIT_S
    ).status_code


def upstream_row(page: Page, url: str) -> Locator:
    """The change list's row of an upstream (its address is the row's link)."""
    return page.locator("#result_list tbody tr").filter(
        has=page.get_by_role("link", name=url, exact=True)
    )


def reload_until_text(page: Page, locator: Locator, pattern: re.Pattern[str]) -> None:
    """Reload the page until ``locator`` shows ``pattern`` (stored checks land later)."""
    deadline = time.monotonic() + WAIT_S
    while not pattern.search(locator.inner_text()):
        assert time.monotonic() < deadline, (
            f"not within {WAIT_S} s: {pattern.pattern!r}, still {locator.inner_text()!r}"
        )
        page.reload()


def test_an_upstream_added_in_the_console_takes_traffic_without_a_restart(
    kodify_server: Any, fakes: tuple[FakeUpstreamServer, FakeUpstreamServer], tmp_path: Path
) -> None:
    first, second = fakes
    env = {
        "KODIFY_UPSTREAMS": first.url,
        "KODIFY_CONFIG_POLL_INTERVAL": "0.2",
        "KODIFY_MODEL_REFRESH_INTERVAL": "1",
    }
    server: KodifyServer = kodify_server(env, workers=WORKERS)
    create_administrator(tmp_path / "server0", env)  # kodify_server names its first "server0"
    assert chat(server.url) == 200
    assert second.fake.seen == 0
    with health_checks_stored(), chromium() as browser:
        use_the_console(browser, server, first, second, tmp_path)


def use_the_console(
    browser: Browser,
    server: KodifyServer,
    first: FakeUpstreamServer,
    second: FakeUpstreamServer,
    tmp_path: Path,
) -> None:
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        log_in(page, server.url)
        before = console_version(server, WORKERS)
        add_the_second_upstream(page, first, second)
        traffic_spreads(server, first, second, before)
        disable_the_second_upstream(page, server, first, second)
        max_n_from_the_console(page, server)
        delete_the_second_upstream(page, server, second)
    except BaseException:
        with contextlib.suppress(Exception):
            page.screenshot(path=str(tmp_path / "failure-page.png"), full_page=True)
            page.goto(server.url + "/admin/gateway/upstreamserver/")
            page.screenshot(path=str(tmp_path / "upstream-list.png"), full_page=True)
            print(f"screenshots in {tmp_path}; server log:\n{server.log()}")
        raise
    finally:
        context.close()


def add_the_second_upstream(
    page: Page, first: FakeUpstreamServer, second: FakeUpstreamServer
) -> None:
    page.locator("#home-group-gateway [data-nav='gateway.upstreamserver'] a").first.click()
    expect(page.locator("#upstream-source-rule")).to_contain_text("Which source wins")
    row = upstream_row(page, first.url)
    expect(row.locator("td.field-source_shown")).to_have_text("config.yml")
    reload_until_text(page, row.locator("td.field-health"), re.compile(r"● up\b"))
    expect(row.locator("td.field-served_models")).to_contain_text(MODEL)

    page.locator("a.addlink[href$='/add/']").click()  # the header's "+"
    page.fill("#id_url", second.url)
    page.fill("#id_name", SECOND_NAME)
    page.fill("#id_weight", "1")
    page.fill("#id_new_api_key", SECOND_KEY)
    page.click("[name=_save]")
    expect(page.locator(".messagelist")).to_contain_text("was added successfully")
    row = upstream_row(page, second.url)
    expect(row.locator("td.field-name")).to_have_text(SECOND_NAME)
    expect(row.locator("td.field-source_shown")).to_have_text("console")
    reload_until_text(page, row.locator("td.field-health"), re.compile(r"● up\b"))
    assert SECOND_KEY not in page.content()

    # Open it again: the key is write-only; the page says that one is set, never what.
    row.get_by_role("link", name=second.url, exact=True).click()
    expect(page.locator(".field-api_key_state")).to_contain_text("set (its own key)")
    assert page.input_value("#id_new_api_key") == ""
    assert SECOND_KEY not in page.content()
    page.locator("#header-inner a", has_text="Upstreams").click()  # the page title's path


def traffic_spreads(
    server: KodifyServer, first: FakeUpstreamServer, second: FakeUpstreamServer, before: str
) -> None:
    def batch() -> None:
        statuses = [chat(server.url) for _ in range(BATCH)]
        assert statuses == [200] * BATCH

    def second_is_healthy(report: dict[str, Any]) -> bool:
        return report["console_version"] != before and any(
            u["url"] == second.url and u["healthy"] for u in report["upstreams"]
        )

    assert every_worker(server, WORKERS, second_is_healthy)
    # Both take requests (a worker alternates between equally busy replicas): spread.
    first_before, second_before = first.fake.seen, second.fake.seen
    for _ in range(4):
        batch()
    assert first.fake.seen > first_before and second.fake.seen > second_before, (
        f"first {first.fake.seen - first_before}, second {second.fake.seen - second_before}"
        f" of {4 * BATCH}"
    )
    print(
        f"spread over {4 * BATCH} requests: first {first.fake.seen - first_before}, "
        f"second {second.fake.seen - second_before}"
    )
    # With the key typed in the console (the fake takes any key; Kodify sends that one).
    headers = {name.lower(): value for name, value in second.fake.records[-1].headers.items()}
    assert headers.get("authorization") == f"Bearer {SECOND_KEY}"


def disable_the_second_upstream(
    page: Page, server: KodifyServer, first: FakeUpstreamServer, second: FakeUpstreamServer
) -> None:
    row = upstream_row(page, second.url)
    before = console_version(server, WORKERS)
    row.locator("input.action-select").check()
    page.select_option("select[name=action]", "disable_upstreams")
    page.click("button[name=index]")  # "Go"
    expect(page.locator(".messagelist")).to_contain_text("Disabled 1 upstream(s)")
    expect(upstream_row(page, second.url).locator("td.field-health")).to_contain_text("(disabled)")
    expect(upstream_row(page, first.url).locator("td.field-health")).to_contain_text("● up")

    assert console_applied(server, WORKERS, after=before)
    first_before, second_before = first.fake.seen, second.fake.seen
    assert [chat(server.url) for _ in range(2 * BATCH)] == [200] * (2 * BATCH)
    assert (first.fake.seen - first_before, second.fake.seen - second_before) == (2 * BATCH, 0)


def max_n_from_the_console(page: Page, server: KodifyServer) -> None:
    page.goto(server.url + "/admin/")
    page.locator("#home-group-gateway [data-nav='gateway.gatewaysetting'] a").click()
    max_n_row = page.locator("#effective-settings tbody tr").filter(has_text="MAX_N")
    expect(max_n_row).not_to_contain_text("console")
    assert chat(server.url, n=2) == 200

    before = console_version(server, WORKERS)
    page.fill("#id_max_n", "1")
    page.click("[name=_save]")
    expect(page.locator(".messagelist")).to_contain_text("The gateway settings were saved.")
    expect(max_n_row.locator("td").nth(0)).to_have_text("1")
    expect(max_n_row.locator("td").nth(1)).to_have_text("console")
    assert console_applied(server, WORKERS, after=before)
    assert [chat(server.url, n=2) for _ in range(BATCH)] == [400] * BATCH
    assert chat(server.url) == 200

    # Back to the environment's value: an empty field.
    before = console_version(server, WORKERS)
    page.fill("#id_max_n", "")
    page.click("[name=_save]")
    expect(page.locator(".messagelist")).to_contain_text("The gateway settings were saved.")
    expect(max_n_row.locator("td").nth(1)).not_to_contain_text("console")
    assert console_applied(server, WORKERS, after=before)
    assert [chat(server.url, n=2) for _ in range(BATCH)] == [200] * BATCH


def delete_the_second_upstream(
    page: Page, server: KodifyServer, second: FakeUpstreamServer
) -> None:
    page.goto(server.url + "/admin/gateway/upstreamserver/")
    upstream_row(page, second.url).locator("input.action-select").check()
    page.select_option("select[name=action]", "delete_selected")
    page.click("button[name=index]")
    page.click("#content form [type=submit]")  # "Yes, I'm sure"
    expect(page.locator(".messagelist")).to_contain_text("Successfully deleted 1")
    expect(upstream_row(page, second.url)).to_have_count(0)
