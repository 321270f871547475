"""The console's frame: the overview home, the open-API banner and start-up warning, the
error pages, the icon, and console accounts made with their role."""

from __future__ import annotations

import datetime as dt
import io
import re
from typing import Any

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from accounts import services
from accounts.models import AuditEvent
from accounts.roles import ADMINISTRATORS, AUDITORS
from gateway.models import UpstreamServer
from journal.selectors import parse_status
from journal.tests.entries import console_account, make_entry
from kodify_site import serve

pytestmark = pytest.mark.django_db

TODAY = dt.datetime(2026, 11, 20, 15, 0, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def fast_hashes(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def home(user: Any) -> str:
    client = Client()
    client.force_login(user)
    response = client.get(reverse("admin:index"))
    assert response.status_code == 200
    return response.content.decode()


@pytest.mark.smoke
def test_dummy_mode_puts_a_red_banner_on_every_console_page(settings: Any) -> None:
    settings.MTSAI_AUTH, settings.VLLM_API_KEY = False, ""
    admin = console_account("root", ADMINISTRATORS, is_superuser=True)
    client = Client()
    client.force_login(admin)
    pages = [client.get(reverse("admin:index")), client.get(reverse("journal:list"))]
    pages.append(Client().get(reverse("admin:login")))  # before logging in, too
    for page in pages:
        html = page.content.decode()
        assert page.status_code == 200
        assert 'id="kodify-api-open"' in html and "The API is open" in html
    assert "Open to anyone (dummy mode)" in home(admin)


def test_a_protected_api_shows_no_banner_and_says_how_it_is_protected(settings: Any) -> None:
    admin = console_account("root", ADMINISTRATORS, is_superuser=True)
    settings.MTSAI_AUTH = True
    html = home(admin)
    assert 'id="kodify-api-open"' not in html
    assert "A token per user" in html
    settings.MTSAI_AUTH, settings.VLLM_API_KEY = False, "s3cret-shared-token"
    html = home(admin)
    assert "One shared token" in html and 'id="kodify-api-open"' not in html
    assert "s3cret-shared-token" not in html


def test_the_home_names_kodify_not_django() -> None:
    html = home(console_account("root", ADMINISTRATORS, is_superuser=True))
    # The theme writes the title after a blank (its environment prefix, empty here).
    assert re.search(r"<title>\s*Overview \| Kodify console</title>", html)
    assert "Django administration" not in html and "Django site admin" not in html
    assert "kodify/favicon.svg" in html
    assert 'href="/admin/connect/" id="overview-connect"' in html


def nav_keys(html: str) -> set[str]:
    return set(re.findall(r'data-nav="([^"]+)"', html))


def test_the_home_and_the_side_bar_group_the_pages_by_task() -> None:
    html = home(console_account("root", ADMINISTRATORS, is_superuser=True))
    for group in ("people", "gateway", "journal", "system"):
        assert f'id="home-group-{group}"' in html
    assert {
        "accounts.apiuser",
        "accounts.apitoken",
        "auth.user",
        "gateway.upstreamserver",
        "gateway.servedmodel",
        "gateway.gatewaysetting",
        "journal.list",
        "journal.dashboard",
        "journal.live",
        "accounts.auditevent",
        "axes.accessattempt",
        "django_celery_beat.periodictask",
        "auth.group",
    } <= nav_keys(html)
    sidebar = html.split('id="nav-sidebar"', 1)[1].split('id="main"', 1)[0]
    for title in ("People", "Gateway", "Journal", "System", "Connect your IDE", "Audit trail"):
        assert title in sidebar
    # The plumbing's own lists stay off the home and the side bar.
    for plumbing in ("Content types", "Sessions", "Crontabs", "Clocked", "Solar events"):
        assert plumbing not in html


def test_auditors_are_offered_only_what_they_may_read() -> None:
    html = home(console_account("audrey", AUDITORS))
    shown = nav_keys(html)
    assert {"accounts.apiuser", "accounts.auditevent", "journal.list"} <= shown
    for written in ("auth.user", "gateway.upstreamserver", "gateway.gatewaysetting"):
        assert written not in shown
    assert not shown & {"django_celery_beat.periodictask", "auth.group", "axes.accessattempt"}
    assert 'class="addlink"' not in html.split('id="kodify-tasks"', 1)[1]
    sidebar = html.split('id="nav-sidebar"', 1)[1].split('id="main"', 1)[0]
    assert "Console accounts" not in sidebar and "Upstreams" not in sidebar


def test_a_page_whose_admin_is_not_there_is_left_out_of_the_navigation(
    rf: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kodify_site import navigation

    request = rf.get("/admin/")
    request.user = console_account("root", ADMINISTRATORS, is_superuser=True)
    entries = (*navigation.GATEWAY, ("gateway", "nosuchmodel", "Nothing", "block"))
    monkeypatch.setattr(navigation, "GATEWAY", entries)
    gateway = next(g for g in navigation.sidebar(request) if g["key"] == "gateway")
    assert "gateway.nosuchmodel" not in [item["key"] for item in gateway["items"]]
    assert "gateway.upstreamserver" in [item["key"] for item in gateway["items"]]


def test_every_console_page_is_on_the_theme() -> None:
    from axes.models import AccessAttempt
    from django.contrib import admin
    from django.contrib.auth.models import Group, User
    from django_celery_beat.models import PeriodicTask
    from unfold.admin import ModelAdmin as UnfoldModelAdmin

    for model in (User, Group, PeriodicTask, AccessAttempt, UpstreamServer):
        assert isinstance(admin.site._registry[model], UnfoldModelAdmin), model
    client = Client()
    client.force_login(console_account("root", ADMINISTRATORS, is_superuser=True))
    for page in ("auth_user_add", "django_celery_beat_periodictask_add"):
        assert client.get(reverse(f"admin:{page}")).status_code == 200, page


@time_machine.travel(TODAY, tick=False)
def test_the_overview_counts_todays_requests_errors_users_and_tokens(settings: Any) -> None:
    settings.LOGS = True
    make_entry(created_at=TODAY - dt.timedelta(hours=1), username="ada", token_id=1)
    make_entry(created_at=TODAY - dt.timedelta(hours=2), username="ada", token_id=2, status=502)
    make_entry(created_at=TODAY - dt.timedelta(hours=3), username="bob", token_id=3, status=429)
    make_entry(created_at=TODAY - dt.timedelta(days=1), username="eve", token_id=4)  # yesterday
    html = home(console_account("audrey", AUDITORS))
    assert "Journal, 2026-11-20 (UTC)" in html
    assert 'id="overview-requests">3<' in html
    assert 'id="overview-errors">2<' in html
    assert 'id="overview-users">2<' in html
    assert 'id="overview-tokens">3<' in html
    # The figures lead to the journal, filtered the same way.
    assert "/journal/?since=2026-11-20&amp;status=errors" in html
    client = Client()
    client.force_login(console_account("audrey2", AUDITORS))
    listed = client.get("/journal/?since=2026-11-20&status=errors").content.decode()
    assert listed.count("<tr data-request-id=") == 2


def test_the_overview_says_when_the_journal_is_off(settings: Any) -> None:
    settings.LOGS = False
    html = home(console_account("root", ADMINISTRATORS, is_superuser=True))
    assert "Off: requests are not recorded" in html
    client = Client()
    client.force_login(console_account("audrey", AUDITORS))
    assert 'id="journal-off"' in client.get(reverse("journal:list")).content.decode()


def test_the_overview_lists_each_model_server_with_its_state_and_models() -> None:
    UpstreamServer.objects.create(
        url="http://10.0.0.1:8000",
        name="gpu-1",
        healthy=True,
        models=[{"id": "qwen-coder", "max_model_len": 4096}],
    )
    UpstreamServer.objects.create(
        url="http://10.0.0.2:8000", name="gpu-2", healthy=False, last_error="connection refused"
    )
    UpstreamServer.objects.create(url="http://10.0.0.3:8000", name="gpu-3")  # never checked
    html = home(console_account("root", ADMINISTRATORS, is_superuser=True))
    assert "gpu-1: qwen-coder" in html
    assert 'title="healthy"' in html and 'title="down"' in html
    assert 'title="not checked yet"' in html
    assert "connection refused" in html


def test_no_model_server_is_said_plainly() -> None:
    UpstreamServer.objects.all().delete()
    html = home(console_account("root", ADMINISTRATORS, is_superuser=True))
    assert "No model server: every API request fails." in html


def test_errors_is_a_status_filter() -> None:
    assert str(parse_status("errors")) == "(AND: ('status__gte', 400))"


# -- pages outside the admin's frame -------------------------------------------------------


@pytest.mark.smoke
def test_a_missing_console_page_is_styled_and_leads_back() -> None:
    client = Client()
    client.force_login(console_account("audrey", AUDITORS))
    response = client.get("/journal/no-such-page/")
    assert response.status_code == 404
    html = response.content.decode()
    assert "Page not found" in html and 'id="back-to-console"' in html
    assert "kodify/console.css" in html


def test_a_page_the_role_may_not_open_is_styled_and_says_why() -> None:
    client = Client()
    client.force_login(console_account("nobody"))  # staff, no role
    response = client.get(reverse("journal:list"))
    assert response.status_code == 403
    html = response.content.decode()
    assert "Not allowed" in html and 'id="back-to-console"' in html


def test_the_browser_icon_is_found() -> None:
    response = Client().get("/favicon.ico")
    assert response.status_code == 301
    assert response["Location"].endswith("kodify/favicon.svg")


# -- the start-up warning ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "host"),
    [
        ([], "127.0.0.1"),
        (["--host", "0.0.0.0", "--port", "8000"], "0.0.0.0"),
        (["--host=::"], "::"),
        (["--uds", "/run/kodify.sock"], "127.0.0.1"),
    ],
)
def test_the_listening_address_is_read_from_uvicorns_options(argv: list[str], host: str) -> None:
    assert serve.listen_host(argv) == host


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("localhost", True), ("::1", True), ("[::1]", True),
     ("0.0.0.0", False), ("::", False), ("10.1.2.3", False), ("gateway.example", False)],
)  # fmt: skip
def test_loopback_addresses(host: str, loopback: bool) -> None:
    assert serve.is_loopback(host) is loopback


def test_dummy_mode_beyond_loopback_is_warned_loudly(settings: Any) -> None:
    settings.MTSAI_AUTH, settings.VLLM_API_KEY = False, ""
    warning = serve.open_api_warning("0.0.0.0")
    assert warning is not None and "the API is OPEN" in warning and "MTSAI_AUTH=true" in warning
    assert serve.open_api_warning("127.0.0.1") is None
    settings.MTSAI_AUTH = True
    assert serve.open_api_warning("0.0.0.0") is None


# -- console accounts with a role ------------------------------------------------------------------


def test_an_auditor_made_by_the_command_logs_in_and_reads_the_journal_and_audit_trail() -> None:
    out = io.StringIO()
    call_command("kodify_console_user", "create", "audrey", "--role", "auditor", stdout=out)
    text = out.getvalue()
    password = text.split("Password (shown once): ")[1].split()[0]
    user = get_user_model().objects.get(username="audrey")
    assert user.is_staff and not user.is_superuser
    assert not user.check_password("wrong") and user.check_password(password)
    client = Client()
    login = client.post(
        reverse("admin:login"), {"username": "audrey", "password": password, "next": "/admin/"}
    )
    assert login.status_code == 302, login.content.decode()
    assert client.get(reverse("journal:list")).status_code == 200
    assert client.get(reverse("admin:accounts_auditevent_changelist")).status_code == 200
    assert client.get(reverse("admin:accounts_apiuser_add")).status_code == 403
    assert AuditEvent.objects.filter(action="console_user.create", target="audrey").exists()
    listing = io.StringIO()
    call_command("kodify_console_user", "list", stdout=listing)
    assert "audrey" in listing.getvalue() and "auditor" in listing.getvalue()


def test_an_administrator_made_by_the_command_manages_api_users() -> None:
    user, _ = services.create_console_user(username="ops", role="administrator")
    client = Client()
    client.force_login(user)
    assert client.get(reverse("admin:accounts_apiuser_add")).status_code == 200
    assert services.console_role(user) == "administrator"


def test_console_accounts_are_refused_with_a_sentence() -> None:
    services.create_console_user(username="Ops", role="auditor")
    with pytest.raises(CommandError, match="exists already"):
        call_command("kodify_console_user", "create", "ops", "--role", "administrator")
    with pytest.raises(CommandError, match="invalid choice"):
        call_command("kodify_console_user", "create", "x", "--role", "root")


# -- checked settings ----------------------------------------------------------------------------


@pytest.fixture
def served() -> UpstreamServer:
    return UpstreamServer.objects.create(
        url="http://10.0.0.1:8000",
        name="gpu-1",
        healthy=True,
        models=[
            {"id": "qwen-coder", "max_model_len": 4096},
            {"id": "small", "max_model_len": 2048},
        ],
    )


def settings_page(client: Client, **values: str) -> Any:
    form = {"max_n": "", "default_max_tokens": "", "tabby_model_name": "", **values}
    return client.post(reverse("admin:gateway_gatewaysetting_change", args=[1]), form)


@pytest.fixture
def root() -> Client:
    client = Client()
    client.force_login(console_account("root", ADMINISTRATORS, is_superuser=True))
    return client


def test_a_tabby_model_no_server_serves_is_refused_with_the_served_ones_named(
    root: Client, served: UpstreamServer
) -> None:
    from gateway.models import GatewaySetting

    response = settings_page(root, tabby_model_name="<script>alert(1)</script>")
    assert response.status_code == 200
    html = response.content.decode()
    assert "No model server serves" in html and "qwen-coder, small" in html
    assert "<script>alert(1)</script>" not in html  # escaped, never run
    assert not GatewaySetting.objects.filter(tabby_model_name__contains="script").exists()
    assert settings_page(root, tabby_model_name="qwen-coder").status_code == 302
    assert GatewaySetting.objects.get().tabby_model_name == "qwen-coder"


def test_a_default_max_tokens_beyond_a_models_context_is_refused(
    root: Client, served: UpstreamServer
) -> None:
    html = settings_page(root, default_max_tokens="999999999").content.decode()
    assert "leave no room for the prompt in &#x27;small&#x27;" in html
    assert "2,048 tokens" in html
    assert settings_page(root, default_max_tokens="512").status_code == 302


def test_max_n_and_upstream_weights_have_bounds(root: Client, served: UpstreamServer) -> None:
    assert "At most 16 answers" in settings_page(root, max_n="1000").content.decode()
    page = root.post(
        reverse("admin:gateway_upstreamserver_change", args=[served.pk]),
        {"url": served.url, "name": "gpu-1", "enabled": "on", "position": "0", "weight": "1e308",
         "max_concurrent": "", "preprocessing_0": "", "preprocessing_1": ""},
    )  # fmt: skip
    assert page.status_code == 200
    assert "The weight is a share of the traffic" in page.content.decode()
    served.refresh_from_db()
    assert served.weight == 1.0
