"""The console for API users and tokens: what administrators do, what auditors
may not, and the login's brute-force protection."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts import services, tokens
from accounts.models import ApiToken, ApiUser, AuditEvent
from accounts.roles import ADMINISTRATORS, AUDITORS
from kodify_site.testing import REPO, server_environment

pytestmark = [pytest.mark.smoke, pytest.mark.django_db]

PASSWORD = "a-long-console-password-7"


@pytest.fixture(autouse=True)
def fast_password_hashing(settings: Any) -> None:
    # Every login attempt hashes a password; the production hasher is slow on purpose.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def console_account(username: str, group: str) -> Any:
    account = get_user_model().objects.create_user(username, password=PASSWORD, is_staff=True)
    account.groups.add(Group.objects.get(name=group))
    return account


@pytest.fixture
def administrator() -> Any:
    # A member of the role, not a superuser: the role's permissions must be enough.
    return console_account("alice", ADMINISTRATORS)


@pytest.fixture
def auditor() -> Any:
    return console_account("audrey", AUDITORS)


@pytest.fixture
def admin_console(administrator: Any) -> Client:
    client = Client()
    client.force_login(administrator)
    return client


@pytest.fixture
def auditor_console(auditor: Any) -> Client:
    client = Client()
    client.force_login(auditor)
    return client


@pytest.fixture
def api_user() -> ApiUser:
    return services.create_user(username="dev1", full_name="Dev One")


@pytest.fixture
def token(api_user: ApiUser) -> ApiToken:
    issued, _ = services.issue_token(user=api_user, name="laptop")
    return issued


def events(action: str | None = None) -> list[AuditEvent]:
    found = AuditEvent.objects.order_by("at", "pk")
    return list(found.filter(action=action) if action else found)


def user_form(**values: Any) -> dict[str, Any]:
    """The add/change form of an API user, with the (empty) token inline's management form."""
    data = {
        "username": "",
        "full_name": "",
        "email": "",
        "comment": "",
        "is_active": "on",
        "requests_per_minute": "",
        "max_concurrent": "",
        "allowed_models": "",
        "tokens-TOTAL_FORMS": "0",
        "tokens-INITIAL_FORMS": "0",
        "tokens-MIN_NUM_FORMS": "0",
        "tokens-MAX_NUM_FORMS": "0",
    }
    data.update(values)
    return {key: value for key, value in data.items() if value is not None}


def issue_url(user: ApiUser) -> str:
    return reverse("admin:accounts_apiuser_issue_token", args=[user.pk])


def open_issue_form(console: Client, user: ApiUser) -> str:
    response = console.get(issue_url(user))
    assert response.status_code == 200
    return str(response.context["form"]["nonce"].value())


# -- administrators ------------------------------------------------------------------------


def test_admin_creates_a_user_through_the_services(
    admin_console: Client, administrator: Any
) -> None:
    response = admin_console.post(
        reverse("admin:accounts_apiuser_add"),
        user_form(
            username="dev2",
            full_name="Dev Two",
            requests_per_minute="30",
            allowed_models="qwen-coder, fim-model\nqwen-coder",
        ),
    )
    assert response.status_code == 302, response.context and response.context["errors"]
    user = ApiUser.objects.get(username="dev2")
    assert (user.full_name, user.requests_per_minute, user.max_concurrent) == ("Dev Two", 30, None)
    assert user.allowed_models == ["qwen-coder", "fim-model"]
    [event] = events("user.created")
    assert (event.actor, event.target, event.target_id) == (administrator, "dev2", str(user.pk))


def test_admin_changes_a_user_and_each_change_is_audited(
    admin_console: Client, api_user: ApiUser
) -> None:
    url = reverse("admin:accounts_apiuser_change", args=[api_user.pk])
    response = admin_console.post(
        url, user_form(username="dev1", full_name="Dev Renamed", is_active=None, max_concurrent="2")
    )
    assert response.status_code == 302
    api_user.refresh_from_db()
    assert (api_user.full_name, api_user.max_concurrent, api_user.is_active) == (
        "Dev Renamed",
        2,
        False,
    )
    [changed] = events("user.changed")
    assert changed.details == {"full_name": "Dev Renamed", "max_concurrent": 2}
    assert [e.actor_name for e in events("user.disabled")] == ["alice"]


def test_saving_an_unchanged_user_writes_nothing(admin_console: Client, api_user: ApiUser) -> None:
    before = len(events())
    url = reverse("admin:accounts_apiuser_change", args=[api_user.pk])
    response = admin_console.post(url, user_form(username="dev1", full_name="Dev One"))
    assert response.status_code == 302
    assert len(events()) == before


def test_users_are_disabled_never_deleted(admin_console: Client, token: ApiToken) -> None:
    user = token.user
    delete = reverse("admin:accounts_apiuser_delete", args=[user.pk])
    assert admin_console.post(delete, {"post": "yes"}).status_code == 403
    changelist = reverse("admin:accounts_apiuser_changelist")
    offered = admin_console.get(changelist).context["action_form"].fields["action"].choices
    assert [name for name, _ in offered if name] == ["disable_users", "enable_users"]
    admin_console.post(
        changelist, {"action": "delete_selected", "_selected_action": [str(user.pk)], "post": "yes"}
    )
    assert ApiUser.objects.filter(pk=user.pk).exists()
    assert ApiToken.objects.filter(pk=token.pk).exists()


def test_user_list_shows_token_counts_limits_and_searches(
    admin_console: Client, token: ApiToken
) -> None:
    services.issue_token(user=token.user, name="old")
    services.revoke_token(token=ApiToken.objects.get(name="old"))
    services.create_user(username="other", email="x@example.com", requests_per_minute=5)
    page = admin_console.get(reverse("admin:accounts_apiuser_changelist"))
    text = page.content.decode()
    assert "1 active / 2" in text
    assert f"default ({settings.KODIFY_RATE_LIMIT_PER_MINUTE})" in text
    search = admin_console.get(reverse("admin:accounts_apiuser_changelist"), {"q": "example.com"})
    assert [u.username for u in search.context["cl"].result_list] == ["other"]
    inactive = admin_console.get(
        reverse("admin:accounts_apiuser_changelist"), {"is_active__exact": "0"}
    )
    assert list(inactive.context["cl"].result_list) == []


def test_issue_token_shows_the_token_once_and_stores_only_prefix_and_digest(
    admin_console: Client, api_user: ApiUser, administrator: Any
) -> None:
    user_page = admin_console.get(reverse("admin:accounts_apiuser_change", args=[api_user.pk]))
    assert issue_url(api_user).encode() in user_page.content  # the button is there
    nonce = open_issue_form(admin_console, api_user)
    response = admin_console.post(
        issue_url(api_user), {"name": "VS Code", "comment": "desk", "nonce": nonce}
    )
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    plain = response.context["plain_token"]
    assert tokens.prefix_of(plain.encode()) is not None
    page = response.content.decode()
    assert page.count(plain) == 1 and "you will not see it again" in page
    assert 'id="copy-token"' in page

    stored = ApiToken.objects.get(user=api_user)
    assert plain.startswith(stored.prefix)
    assert stored.digest == tokens.digest(services.token_hash_key(), plain)
    row = ApiToken.objects.filter(pk=stored.pk).values().get()
    assert not any(plain in str(value) for value in row.values())
    assert (stored.name, stored.comment, stored.created_by) == ("VS Code", "desk", administrator)
    [event] = events("token.issued")
    assert event.actor == administrator and plain not in f"{event.target}{event.details}"
    # Nowhere to be found again: not in the session, a message, or the same URL.
    assert plain not in str(dict(admin_console.session.items()))
    assert not [m for m in get_messages(response.wsgi_request) if plain in str(m)]
    again = admin_console.get(issue_url(api_user))
    assert again.status_code == 200 and plain not in again.content.decode()
    assert "form" in again.context


def test_resending_the_issue_form_does_not_issue_a_second_token(
    admin_console: Client, api_user: ApiUser
) -> None:
    nonce = open_issue_form(admin_console, api_user)
    first = admin_console.post(issue_url(api_user), {"name": "ci", "nonce": nonce})
    assert first.status_code == 200
    resent = admin_console.post(issue_url(api_user), {"name": "ci", "nonce": nonce})
    assert resent.status_code == 302
    assert resent["Location"] == reverse("admin:accounts_apiuser_change", args=[api_user.pk])
    assert ApiToken.objects.filter(user=api_user).count() == 1
    assert first.context["plain_token"] not in resent.content.decode()


def test_issue_token_with_expiry_and_refuses_a_past_one(
    admin_console: Client, api_user: ApiUser
) -> None:
    nonce = open_issue_form(admin_console, api_user)
    past = admin_console.post(
        issue_url(api_user), {"name": "x", "expires_at": "2001-01-01T10:00", "nonce": nonce}
    )
    assert past.status_code == 200 and past.context["form"].errors["expires_at"]
    assert not ApiToken.objects.exists()
    future = (timezone.now() + timedelta(days=30)).replace(second=0, microsecond=0)
    response = admin_console.post(
        issue_url(api_user),
        {"name": "x", "expires_at": future.strftime("%Y-%m-%dT%H:%M"), "nonce": nonce},
    )
    assert response.status_code == 200
    assert ApiToken.objects.get(user=api_user).expires_at == future


def test_token_pages_never_show_the_digest(admin_console: Client, token: ApiToken) -> None:
    pages = [
        reverse("admin:accounts_apiuser_change", args=[token.user.pk]),
        reverse("admin:accounts_apitoken_changelist"),
        reverse("admin:accounts_apitoken_change", args=[token.pk]),
    ]
    for url in pages:
        page = admin_console.get(url).content.decode()
        assert token.prefix in page and token.digest not in page, url


def test_tokens_have_no_add_form_and_are_never_deleted(
    admin_console: Client, token: ApiToken
) -> None:
    assert admin_console.get(reverse("admin:accounts_apitoken_add")).status_code == 403
    delete = reverse("admin:accounts_apitoken_delete", args=[token.pk])
    assert admin_console.post(delete, {"post": "yes"}).status_code == 403
    assert ApiToken.objects.filter(pk=token.pk).exists()


def test_admin_revokes_a_token_on_its_page(
    admin_console: Client, token: ApiToken, administrator: Any
) -> None:
    token_page = admin_console.get(reverse("admin:accounts_apitoken_change", args=[token.pk]))
    revoke = reverse("admin:accounts_apitoken_revoke", args=[token.pk])
    assert revoke.encode() in token_page.content
    assert admin_console.get(revoke).status_code == 200  # the confirmation
    assert ApiToken.objects.get(pk=token.pk).revoked_at is None
    response = admin_console.post(revoke)
    assert response.status_code == 302
    token.refresh_from_db()
    assert token.state == "revoked" and token.revoked_by == administrator
    assert [e.actor for e in events("token.revoked")] == [administrator]
    assert revoke.encode() not in admin_console.get(response["Location"]).content


def test_admin_revokes_tokens_with_the_list_action(admin_console: Client, token: ApiToken) -> None:
    response = admin_console.post(
        reverse("admin:accounts_apitoken_changelist"),
        {"action": "revoke_tokens", "_selected_action": [str(token.pk)]},
    )
    assert response.status_code == 302
    assert ApiToken.objects.get(pk=token.pk).state == "revoked"
    assert len(events("token.revoked")) == 1


def test_admin_sets_a_token_expiry(admin_console: Client, token: ApiToken) -> None:
    when = (timezone.now() + timedelta(days=7)).replace(second=0, microsecond=0)
    response = admin_console.post(
        reverse("admin:accounts_apitoken_change", args=[token.pk]),
        {"expires_at_0": when.strftime("%Y-%m-%d"), "expires_at_1": when.strftime("%H:%M:%S")},
    )
    assert response.status_code == 302, response.context and response.context["errors"]
    assert ApiToken.objects.get(pk=token.pk).expires_at == when
    [event] = events("token.expiry_changed")
    assert event.details == {"from": None, "to": when.isoformat()}


def test_token_list_filters_by_state_and_searches(admin_console: Client, token: ApiToken) -> None:
    gone, _ = services.issue_token(user=token.user, name="gone")
    services.revoke_token(token=gone)
    url = reverse("admin:accounts_apitoken_changelist")
    for state, expected in (("active", [token.pk]), ("revoked", [gone.pk]), ("expired", [])):
        found = admin_console.get(url, {"state": state}).context["cl"].result_list
        assert [t.pk for t in found] == expected, state
    found = admin_console.get(url, {"q": gone.prefix}).context["cl"].result_list
    assert [t.pk for t in found] == [gone.pk]


@pytest.mark.parametrize(("action", "active"), [("disable_users", False), ("enable_users", True)])
def test_admin_disables_and_enables_users(
    admin_console: Client, api_user: ApiUser, action: str, active: bool
) -> None:
    services.set_user_active(user=api_user, active=not active)
    before = len(events())
    response = admin_console.post(
        reverse("admin:accounts_apiuser_changelist"),
        {"action": action, "_selected_action": [str(api_user.pk)]},
    )
    assert response.status_code == 302
    assert ApiUser.objects.get(pk=api_user.pk).is_active is active
    [event] = events()[before:]
    assert event.action == ("user.enabled" if active else "user.disabled")


def test_admin_reads_the_audit_trail_with_filters_and_search(
    admin_console: Client, token: ApiToken
) -> None:
    url = reverse("admin:accounts_auditevent_changelist")
    everything = admin_console.get(url)
    assert everything.status_code == 200
    assert len(everything.context["cl"].result_list) == 2  # user.created, token.issued
    issued = admin_console.get(url, {"action": "token.issued"}).context["cl"].result_list
    assert [e.action for e in issued] == ["token.issued"]
    by_actor = admin_console.get(url, {"actor": "command line"}).context["cl"].result_list
    assert len(by_actor) == 2
    found = admin_console.get(url, {"q": token.prefix}).context["cl"].result_list
    assert [e.action for e in found] == ["token.issued"]
    event = AuditEvent.objects.get(action="token.issued")
    page = admin_console.get(reverse("admin:accounts_auditevent_change", args=[event.pk]))
    assert page.status_code == 200 and b'name="_save"' not in page.content


@pytest.mark.parametrize("verb", ["add", "change", "delete"])
def test_nobody_writes_the_audit_trail(verb: str, token: ApiToken) -> None:
    root = get_user_model().objects.create_superuser("root", password=PASSWORD)
    console = Client()
    console.force_login(root)
    event = AuditEvent.objects.first()
    assert event is not None
    args = [] if verb == "add" else [event.pk]
    url = reverse(f"admin:accounts_auditevent_{verb}", args=args)
    assert console.post(url, {"action": "forged", "post": "yes"}).status_code == 403
    assert AuditEvent.objects.filter(pk=event.pk, action=event.action).exists()


# -- auditors ------------------------------------------------------------------------------


@dataclass(frozen=True)
class WritePath:
    name: str
    method: str
    url: Callable[[ApiToken, AuditEvent], str]
    data: Callable[[ApiToken], dict[str, Any]] = lambda token: {}


def _url(name: str, what: str = "") -> Callable[[ApiToken, AuditEvent], str]:
    def build(token: ApiToken, event: AuditEvent) -> str:
        pk = {"user": token.user.pk, "token": token.pk, "event": event.pk}.get(what)
        return reverse(f"admin:{name}", args=[pk] if pk is not None else [])

    return build


WRITE_PATHS = [
    WritePath("add user page", "get", _url("accounts_apiuser_add")),
    WritePath("add user", "post", _url("accounts_apiuser_add"), lambda t: user_form(username="x")),
    WritePath(
        "change user",
        "post",
        _url("accounts_apiuser_change", "user"),
        lambda t: user_form(username="dev1", full_name="changed by an auditor"),
    ),
    WritePath("delete user page", "get", _url("accounts_apiuser_delete", "user")),
    WritePath(
        "delete user", "post", _url("accounts_apiuser_delete", "user"), lambda t: {"post": "yes"}
    ),
    WritePath("issue token page", "get", _url("accounts_apiuser_issue_token", "user")),
    WritePath(
        "issue token",
        "post",
        _url("accounts_apiuser_issue_token", "user"),
        lambda t: {"name": "mine", "nonce": "x"},
    ),
    WritePath("revoke page", "get", _url("accounts_apitoken_revoke", "token")),
    WritePath("revoke", "post", _url("accounts_apitoken_revoke", "token")),
    WritePath(
        "revoke action",
        "post",
        _url("accounts_apitoken_changelist"),
        lambda t: {"action": "revoke_tokens", "_selected_action": [str(t.pk)]},
    ),
    WritePath(
        "set expiry",
        "post",
        _url("accounts_apitoken_change", "token"),
        lambda t: {"expires_at_0": "2001-01-01", "expires_at_1": "00:00:00"},
    ),
    WritePath(
        "delete token", "post", _url("accounts_apitoken_delete", "token"), lambda t: {"post": "yes"}
    ),
    WritePath(
        "disable action",
        "post",
        _url("accounts_apiuser_changelist"),
        lambda t: {"action": "disable_users", "_selected_action": [str(t.user.pk)]},
    ),
    WritePath(
        "delete action",
        "post",
        _url("accounts_apiuser_changelist"),
        lambda t: {
            "action": "delete_selected",
            "_selected_action": [str(t.user.pk)],
            "post": "yes",
        },
    ),
    WritePath(
        "add audit event", "post", _url("accounts_auditevent_add"), lambda t: {"action": "x"}
    ),
    WritePath(
        "change audit event",
        "post",
        _url("accounts_auditevent_change", "event"),
        lambda t: {"action": "x"},
    ),
    WritePath(
        "delete audit event",
        "post",
        _url("accounts_auditevent_delete", "event"),
        lambda t: {"post": "yes"},
    ),
]


def snapshot() -> list[Any]:
    return [
        list(ApiUser.objects.order_by("pk").values()),
        list(ApiToken.objects.order_by("pk").values()),
        list(AuditEvent.objects.order_by("pk").values()),
    ]


@pytest.mark.parametrize("write", WRITE_PATHS, ids=lambda w: w.name)
def test_auditors_are_refused_every_write(
    auditor_console: Client, token: ApiToken, write: WritePath
) -> None:
    event = AuditEvent.objects.first()
    assert event is not None
    before = snapshot()
    url = write.url(token, event)
    response = getattr(auditor_console, write.method)(url, write.data(token))
    assert response.status_code == 403, (write.name, response.status_code)
    assert snapshot() == before


def test_auditors_read_users_tokens_and_the_audit_trail_and_change_nothing(
    auditor_console: Client, token: ApiToken
) -> None:
    users = auditor_console.get(reverse("admin:accounts_apiuser_changelist"))
    assert users.status_code == 200 and b"dev1" in users.content
    assert users.context["action_form"] is None  # no actions offered at all
    tokens_page = auditor_console.get(reverse("admin:accounts_apitoken_changelist"))
    assert tokens_page.status_code == 200 and token.prefix.encode() in tokens_page.content

    user_page = auditor_console.get(reverse("admin:accounts_apiuser_change", args=[token.user.pk]))
    assert user_page.status_code == 200
    assert b"issue-token-link" not in user_page.content
    assert b'name="_save"' not in user_page.content
    token_page = auditor_console.get(reverse("admin:accounts_apitoken_change", args=[token.pk]))
    assert token_page.status_code == 200 and b"revoke-token-link" not in token_page.content

    trail = reverse("admin:accounts_auditevent_changelist")
    events = auditor_console.get(trail)
    assert events.status_code == 200 and events.context["action_form"] is None
    index = auditor_console.get(reverse("admin:index")).content
    assert trail.encode() in index


def test_the_console_needs_a_login(client: Client, token: ApiToken) -> None:
    for url in (issue_url(token.user), reverse("admin:accounts_apitoken_revoke", args=[token.pk])):
        response = client.post(url, {"name": "x", "nonce": "x"})
        assert response.status_code == 302 and "/admin/login/" in response["Location"]
    assert ApiToken.objects.count() == 1 and token.revoked_at is None


# -- brute-force protection ------------------------------------------------------------------


def test_login_is_locked_after_the_configured_failures(client: Client, administrator: Any) -> None:
    limit = settings.KODIFY_LOGIN_FAILURE_LIMIT
    assert limit == settings.AXES_FAILURE_LIMIT
    login = reverse("admin:login")
    for attempt in range(1, limit):
        response = client.post(login, {"username": "alice", "password": f"wrong-{attempt}"})
        assert response.status_code == 200, attempt  # the form again, with an error
    locked = client.post(login, {"username": "alice", "password": "wrong-last"})
    assert locked.status_code == 429
    # Even the right password is refused now, and no session is opened.
    right = client.post(login, {"username": "alice", "password": PASSWORD})
    assert right.status_code == 429
    assert "_auth_user_id" not in client.session
    # Another address is not locked out with this one.
    elsewhere = Client(REMOTE_ADDR="10.1.2.3")
    response = elsewhere.post(login, {"username": "alice", "password": PASSWORD})
    assert response.status_code == 302 and "_auth_user_id" in elsewhere.session


def test_a_successful_login_resets_the_failures(client: Client, administrator: Any) -> None:
    login = reverse("admin:login")
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        client.post(login, {"username": "alice", "password": "wrong"})
    assert client.post(login, {"username": "alice", "password": PASSWORD}).status_code == 302
    client.logout()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert client.post(login, {"username": "alice", "password": "wrong"}).status_code == 200


def test_login_limits_come_from_the_environment(tmp_path: Path) -> None:
    env = server_environment(
        tmp_path, {"KODIFY_LOGIN_FAILURE_LIMIT": "3", "KODIFY_LOGIN_COOLOFF_MINUTES": "2.5"}
    )
    code = (
        "from django.conf import settings; "
        "print(settings.AXES_FAILURE_LIMIT, settings.AXES_COOLOFF_TIME.total_seconds())"
    )
    result = subprocess.run(
        [sys.executable, str(REPO / "manage.py"), "shell", "-c", code],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    # The last line: Django's shell first says what it imported.
    assert result.stdout.strip().splitlines()[-1].split() == ["3", "150.0"]
