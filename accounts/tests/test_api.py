"""The management REST API (/api/): who may do what, tokens shown once, the schema and docs."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.staticfiles import finders
from django.core.management import call_command
from django.test import override_settings
from django.utils import timezone
from rest_framework.test import APIClient

from accounts import roles, selectors, services, tokens
from accounts.models import ApiToken, ApiUser, AuditEvent

pytestmark = [pytest.mark.smoke, pytest.mark.django_db]

ADMIN_KEY = "test-admin-api-key-" + "k" * 32


def console_account(username: str, group: str | None, *, is_staff: bool = True) -> Any:
    account = get_user_model().objects.create_user(username, password=None, is_staff=is_staff)
    if group is not None:
        account.groups.add(Group.objects.get(name=group))
    return account


@pytest.fixture
def administrator() -> Any:
    return console_account("boss", roles.ADMINISTRATORS)


@pytest.fixture
def auditor() -> Any:
    return console_account("watcher", roles.AUDITORS)


def logged_in(account: Any, **kwargs: Any) -> APIClient:
    client = APIClient(**kwargs)
    client.force_login(account)
    return client


@pytest.fixture
def admin_client(administrator: Any) -> APIClient:
    return logged_in(administrator)


@pytest.fixture
def auditor_client(auditor: Any) -> APIClient:
    return logged_in(auditor)


@pytest.fixture
def ada() -> ApiUser:
    return services.create_user(username="ada", full_name="Ada Lovelace")


@pytest.fixture
def ada_token(ada: ApiUser) -> ApiToken:
    token, _ = services.issue_token(user=ada, name="laptop")
    return token


def key_client(key: str = ADMIN_KEY) -> APIClient:
    # CSRF checks on: the key must not need them, the session must.
    client = APIClient(enforce_csrf_checks=True)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("pk"))


# --- authentication ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/users/"),
        ("post", "/api/users/"),
        ("get", "/api/tokens/"),
        ("post", "/api/tokens/"),
        ("get", "/api/audit/"),
    ],
)
def test_anonymous_callers_get_401_in_json(method: str, path: str) -> None:
    response = getattr(APIClient(), method)(path, {}, format="json")
    assert response.status_code == 401
    assert response["Content-Type"] == "application/json"
    assert response.json()["detail"]
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_console_accounts_without_a_role_or_staff_status_get_403(ada: ApiUser) -> None:
    no_role = logged_in(console_account("nobody", None))
    not_staff = logged_in(console_account("outsider", roles.ADMINISTRATORS, is_staff=False))
    for client in (no_role, not_staff):
        assert client.get("/api/users/").status_code == 403
        assert client.get(f"/api/users/{ada.pk}/").status_code == 403
        assert client.post("/api/users/", {"username": "x"}, format="json").status_code == 403
    assert not ApiUser.objects.filter(username="x").exists()


def test_inactive_console_account_is_refused(administrator: Any) -> None:
    client = logged_in(administrator)
    administrator.is_active = False
    administrator.save()
    assert client.get("/api/users/").status_code == 401


def test_session_writes_need_the_csrf_token(administrator: Any) -> None:
    client = logged_in(administrator, enforce_csrf_checks=True)
    refused = client.post("/api/users/", {"username": "eve"}, format="json")
    assert refused.status_code == 403
    assert "CSRF" in refused.json()["detail"]
    secret = "a" * 32
    client.cookies[settings.CSRF_COOKIE_NAME] = secret
    accepted = client.post(
        "/api/users/", {"username": "eve"}, format="json", HTTP_X_CSRFTOKEN=secret
    )
    assert accepted.status_code == 201, accepted.content


# --- users -------------------------------------------------------------------------------


def test_administrator_creates_lists_and_changes_users(
    admin_client: APIClient, administrator: Any
) -> None:
    created = admin_client.post(
        "/api/users/",
        {
            "username": "grace",
            "full_name": "Grace Hopper",
            "email": "grace@example.com",
            "requests_per_minute": 30,
            "max_concurrent": 2,
            "allowed_models": ["coder-7b"],
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    body = created.json()
    user = ApiUser.objects.get(pk=body["id"])
    assert (user.username, user.requests_per_minute, user.max_concurrent) == ("grace", 30, 2)
    assert user.allowed_models == ["coder-7b"] and user.is_active
    [event] = events("user.created")
    assert (event.actor, event.actor_name, event.target_id) == (
        administrator,
        "boss",
        str(user.pk),
    )

    listed = admin_client.get("/api/users/").json()
    assert [row["username"] for row in listed["results"]] == ["grace"]
    assert admin_client.get(f"/api/users/{user.pk}/").json()["email"] == "grace@example.com"

    changed = admin_client.patch(
        f"/api/users/{user.pk}/",
        {"requests_per_minute": None, "comment": "2nd floor"},
        format="json",
    )
    assert changed.status_code == 200, changed.content
    user.refresh_from_db()
    assert (user.requests_per_minute, user.comment) == (None, "2nd floor")
    assert events("user.changed")[0].details == {
        "requests_per_minute": None,
        "comment": "2nd floor",
    }

    replaced = admin_client.put(
        f"/api/users/{user.pk}/", {"username": "grace", "full_name": "G. Hopper"}, format="json"
    )
    assert replaced.status_code == 200, replaced.content
    user.refresh_from_db()
    assert user.full_name == "G. Hopper"


def test_users_are_disabled_by_patch_and_never_deleted(
    admin_client: APIClient, ada: ApiUser, ada_token: ApiToken
) -> None:
    deleted = admin_client.delete(f"/api/users/{ada.pk}/")
    assert deleted.status_code == 405
    assert deleted.json()["detail"]
    assert ApiUser.objects.filter(pk=ada.pk).exists()

    disabled = admin_client.patch(f"/api/users/{ada.pk}/", {"is_active": False}, format="json")
    assert disabled.status_code == 200 and disabled.json()["is_active"] is False
    ada.refresh_from_db()
    assert not ada.is_active
    assert len(events("user.disabled")) == 1
    record = selectors.token_record(ada_token.prefix)
    assert record is not None and not record.user_active
    ada_token.refresh_from_db()
    token_state = admin_client.get(f"/api/tokens/{ada_token.pk}/").json()["state"]
    assert token_state == "user disabled"

    enabled = admin_client.patch(f"/api/users/{ada.pk}/", {"is_active": True}, format="json")
    assert enabled.json()["is_active"] is True
    assert len(events("user.enabled")) == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"username": "ada"}, "username"),  # taken
        ({"username": ""}, "username"),
        ({"username": "x", "email": "not-an-email"}, "email"),
        ({"username": "x", "allowed_models": "coder"}, "allowed_models"),
        ({"username": "x", "allowed_models": [1, {}]}, "allowed_models"),
        ({"username": "x", "requests_per_minute": -1}, "requests_per_minute"),
    ],
)
def test_bad_user_input_is_a_400_naming_the_field(
    admin_client: APIClient, ada: ApiUser, body: dict[str, Any], field: str
) -> None:
    response = admin_client.post("/api/users/", body, format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert not ApiUser.objects.filter(username="x").exists()


def test_a_refused_change_leaves_the_user_as_it_was(admin_client: APIClient, ada: ApiUser) -> None:
    services.create_user(username="bob")
    response = admin_client.patch(
        f"/api/users/{ada.pk}/", {"username": "bob", "is_active": False}, format="json"
    )
    assert response.status_code == 400
    ada.refresh_from_db()
    assert (ada.username, ada.is_active) == ("ada", True)
    assert not events("user.changed") and not events("user.disabled")


# --- tokens ------------------------------------------------------------------------------


def test_issued_token_is_shown_once_and_stored_as_prefix_and_digest(
    admin_client: APIClient, administrator: Any, ada: ApiUser
) -> None:
    expires = timezone.now() + timedelta(days=30)
    issued = admin_client.post(
        "/api/tokens/",
        {"user": ada.pk, "name": "laptop", "comment": "VS Code", "expires_at": expires.isoformat()},
        format="json",
    )
    assert issued.status_code == 201, issued.content
    body = issued.json()
    plain = body["token"]
    assert "digest" not in body
    token = ApiToken.objects.get(pk=body["id"])
    assert plain.startswith(token.prefix) and body["prefix"] == token.prefix
    assert len(plain) == tokens.TOKEN_LENGTH and plain != token.prefix
    # The database keeps the prefix and a keyed digest, from which the token checks out.
    assert tokens.matches(services.token_hash_key(), plain.encode(), token.digest)
    assert plain not in token.digest and token.digest not in json.dumps(body)
    assert (token.user, token.name, token.comment, token.created_by) == (
        ada,
        "laptop",
        "VS Code",
        administrator,
    )
    assert token.expires_at is not None and abs(token.expires_at - expires) < timedelta(seconds=1)
    assert body["username"] == "ada" and body["created_by"] == "boss" and body["state"] == "active"

    # Never again: not in the token's page, the list, or the audit trail.
    for path in (f"/api/tokens/{token.pk}/", "/api/tokens/", "/api/audit/"):
        text = admin_client.get(path).content.decode()
        assert plain not in text and token.digest not in text
        assert '"token"' not in text and '"digest"' not in text
    [event] = events("token.issued")
    assert event.actor == administrator and event.details["user"] == "ada"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x"}, "user"),
        ({"user": 999_999, "name": "x"}, "user"),
        ({"user": "ada", "name": "x"}, "user"),
        ({"user": "{ada}", "name": ""}, "name"),
        ({"user": "{ada}", "name": "x", "expires_at": "2000-01-01T00:00:00Z"}, "expires_at"),
        ({"user": "{ada}", "name": "x", "expires_at": "next week"}, "expires_at"),
    ],
)
def test_bad_token_requests_are_a_400_naming_the_field(
    admin_client: APIClient, ada: ApiUser, body: dict[str, Any], field: str
) -> None:
    body = {key: ada.pk if value == "{ada}" else value for key, value in body.items()}
    response = admin_client.post("/api/tokens/", body, format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert not ApiToken.objects.exists()


def test_token_expiry_is_changed_by_patch_only(
    admin_client: APIClient, ada_token: ApiToken
) -> None:
    path = f"/api/tokens/{ada_token.pk}/"
    later = timezone.now() + timedelta(days=7)
    changed = admin_client.patch(path, {"expires_at": later.isoformat()}, format="json")
    assert changed.status_code == 200, changed.content
    assert changed.json()["state"] == "active" and "token" not in changed.json()
    ada_token.refresh_from_db()
    assert ada_token.expires_at is not None
    assert abs(ada_token.expires_at - later) < timedelta(seconds=1)
    assert len(events("token.expiry_changed")) == 1

    # Other fields are not for PATCH to change (past dates: test_token_expiry.py).
    renamed = admin_client.patch(path, {"expires_at": None, "name": "renamed"}, format="json")
    assert renamed.json()["expires_at"] is None and renamed.json()["state"] == "active"
    ada_token.refresh_from_db()
    assert ada_token.name == "laptop"
    assert admin_client.patch(path, {}, format="json").status_code == 400

    assert admin_client.put(path, {"expires_at": None}, format="json").status_code == 405
    assert admin_client.delete(path).status_code == 405
    assert ApiToken.objects.filter(pk=ada_token.pk).exists()


def test_revoking_a_token_is_immediate_and_idempotent(
    admin_client: APIClient, administrator: Any, ada_token: ApiToken
) -> None:
    revoked = admin_client.post(f"/api/tokens/{ada_token.pk}/revoke/")
    assert revoked.status_code == 200, revoked.content
    assert revoked.json()["state"] == "revoked" and revoked.json()["revoked_by"] == "boss"
    record = selectors.token_record(ada_token.prefix)
    assert record is not None and record.revoked
    again = admin_client.post(f"/api/tokens/{ada_token.pk}/revoke/")
    assert again.status_code == 200 and again.json()["revoked_at"] == revoked.json()["revoked_at"]
    [event] = events("token.revoked")
    assert event.actor == administrator
    assert admin_client.post("/api/tokens/999999/revoke/").status_code == 404


def test_tokens_are_filtered_by_user_and_state(admin_client: APIClient, ada: ApiUser) -> None:
    bob = services.create_user(username="bob")
    kept, _ = services.issue_token(user=ada, name="kept")
    gone, _ = services.issue_token(user=ada, name="gone")
    services.revoke_token(token=gone)
    bobs, _ = services.issue_token(user=bob, name="bob's")

    def ids(query: str) -> set[int]:
        response = admin_client.get(f"/api/tokens/?{query}")
        assert response.status_code == 200, response.content
        return {row["id"] for row in response.json()["results"]}

    assert ids(f"user={ada.pk}") == {kept.pk, gone.pk}
    assert ids("username=bob") == {bobs.pk}
    assert ids("state=revoked") == {gone.pk}
    assert ids(f"state=active&user={ada.pk}") == {kept.pk}
    assert ids(f"prefix={kept.prefix}") == {kept.pk}
    assert admin_client.get("/api/tokens/?state=bogus").status_code == 400
    assert admin_client.get("/api/tokens/?user=bogus").status_code == 400


def test_lists_are_paginated(admin_client: APIClient) -> None:
    for name in ("u1", "u2", "u3"):
        services.create_user(username=name)
    page = admin_client.get("/api/users/?limit=2").json()
    assert page["count"] == 3 and len(page["results"]) == 2 and page["next"]
    rest = admin_client.get("/api/users/?limit=2&offset=2").json()
    assert [row["username"] for row in rest["results"]] == ["u3"] and rest["next"] is None


# --- the audit trail ---------------------------------------------------------------------


def test_administrators_read_the_audit_trail(admin_client: APIClient, ada_token: ApiToken) -> None:
    services.revoke_token(token=ada_token)
    trail = admin_client.get("/api/audit/").json()
    assert [row["action"] for row in trail["results"]] == [
        "token.revoked",
        "token.issued",
        "user.created",
    ]
    assert trail["results"][0]["actor_name"] == "command line"
    only = admin_client.get("/api/audit/?action=token.issued").json()["results"]
    assert [row["target_id"] for row in only] == [str(ada_token.pk)]
    # Nobody holds add_auditevent: the trail is written by the services only.
    before = AuditEvent.objects.count()
    assert admin_client.post("/api/audit/", {"action": "x"}, format="json").status_code == 403
    assert AuditEvent.objects.count() == before


# --- auditors ----------------------------------------------------------------------------


def test_auditors_read_users_and_tokens(auditor_client: APIClient, ada_token: ApiToken) -> None:
    assert auditor_client.get("/api/users/").json()["count"] == 1
    assert auditor_client.get(f"/api/users/{ada_token.user_id}/").status_code == 200
    assert auditor_client.get("/api/tokens/").json()["results"][0]["prefix"] == ada_token.prefix
    assert auditor_client.get(f"/api/tokens/{ada_token.pk}/").status_code == 200


def test_auditors_read_the_audit_trail_and_cannot_change_it(
    auditor_client: APIClient, ada: ApiUser
) -> None:
    listed = auditor_client.get("/api/audit/")
    assert listed.status_code == 200 and listed.json()["count"] >= 1
    event = AuditEvent.objects.first()
    assert event is not None
    assert auditor_client.get(f"/api/audit/{event.pk}/").status_code == 200
    for method in ("post", "put", "patch", "delete"):
        assert getattr(auditor_client, method)(f"/api/audit/{event.pk}/").status_code in (403, 405)


AUDITOR_WRITES: list[tuple[str, str, dict[str, Any]]] = [
    ("post", "/api/users/", {"username": "mallory"}),
    ("put", "/api/users/{user}/", {"username": "ada", "full_name": "changed"}),
    ("patch", "/api/users/{user}/", {"full_name": "changed"}),
    ("patch", "/api/users/{user}/", {"is_active": False}),
    ("delete", "/api/users/{user}/", {}),
    ("post", "/api/tokens/", {"user": "{user}", "name": "stolen"}),
    ("patch", "/api/tokens/{token}/", {"expires_at": None}),
    ("put", "/api/tokens/{token}/", {"expires_at": None}),
    ("delete", "/api/tokens/{token}/", {}),
    ("post", "/api/tokens/{token}/revoke/", {}),
]


@pytest.mark.parametrize(("method", "path", "body"), AUDITOR_WRITES)
def test_every_write_is_403_for_auditors(
    auditor_client: APIClient,
    ada_token: ApiToken,
    method: str,
    path: str,
    body: dict[str, Any],
) -> None:
    ada_token.expires_at = timezone.now() + timedelta(days=1)
    ada_token.save()
    ada = ada_token.user
    fill: Callable[[Any], Any] = lambda value: (  # noqa: E731
        value.format(user=ada.pk, token=ada_token.pk) if isinstance(value, str) else value
    )
    before = AuditEvent.objects.count()
    response = getattr(auditor_client, method)(
        fill(path), {key: fill(value) for key, value in body.items()}, format="json"
    )
    assert response.status_code == 403, (method, path, response.status_code)
    assert response.json()["detail"]
    # Nothing changed, nothing was issued, nothing was recorded.
    assert AuditEvent.objects.count() == before
    ada.refresh_from_db()
    ada_token.refresh_from_db()
    assert (ada.full_name, ada.is_active) == ("Ada Lovelace", True)
    assert ada_token.revoked_at is None and ada_token.expires_at is not None
    assert ApiToken.objects.count() == 1 and ApiUser.objects.count() == 1


# --- the admin API key -------------------------------------------------------------------


@override_settings(KODIFY_ADMIN_API_KEY=ADMIN_KEY)
def test_the_admin_api_key_acts_as_an_administrator_without_csrf() -> None:
    client = key_client()
    created = client.post("/api/users/", {"username": "bot"}, format="json")
    assert created.status_code == 201, created.content
    user_id = created.json()["id"]
    issued = client.post("/api/tokens/", {"user": user_id, "name": "ci"}, format="json")
    assert issued.status_code == 201, issued.content
    plain = issued.json()["token"]
    token = ApiToken.objects.get(pk=issued.json()["id"])
    assert tokens.matches(services.token_hash_key(), plain.encode(), token.digest)
    assert token.created_by is None and issued.json()["created_by"] is None
    assert client.post(f"/api/tokens/{token.pk}/revoke/").json()["state"] == "revoked"
    disabled = client.patch(f"/api/users/{user_id}/", {"is_active": False}, format="json")
    assert disabled.status_code == 200
    # Recorded under the key's name, with no console account behind it.
    trail = client.get("/api/audit/")
    assert trail.status_code == 200
    rows = trail.json()["results"]
    assert {row["action"] for row in rows} == {
        "user.created",
        "token.issued",
        "token.revoked",
        "user.disabled",
    }
    assert {(row["actor"], row["actor_name"]) for row in rows} == {(None, "admin API key")}


@pytest.mark.parametrize(
    ("configured", "header", "message"),
    [
        (ADMIN_KEY, f"Bearer {ADMIN_KEY}x", "Invalid admin API key"),
        (ADMIN_KEY, f"Bearer {ADMIN_KEY[:-1]}", "Invalid admin API key"),
        (ADMIN_KEY, "Bearer", "Malformed"),
        (ADMIN_KEY, f"Bearer {ADMIN_KEY} extra", "Malformed"),
        (None, f"Bearer {ADMIN_KEY}", "KODIFY_ADMIN_API_KEY is unset"),
        ("", f"Bearer {ADMIN_KEY}", "KODIFY_ADMIN_API_KEY is unset"),
    ],
)
def test_a_wrong_or_disabled_admin_api_key_is_401(
    configured: str | None, header: str, message: str
) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    with override_settings(KODIFY_ADMIN_API_KEY=configured):
        for response in (
            client.get("/api/users/"),
            client.post("/api/users/", {"username": "bot"}, format="json"),
        ):
            assert response.status_code == 401
            assert message in response.json()["detail"]
            assert ADMIN_KEY not in response.content.decode()
    assert not ApiUser.objects.exists()


def test_a_token_of_an_api_user_is_not_an_admin_key(ada: ApiUser) -> None:
    _, plain = services.issue_token(user=ada, name="plugin")
    with override_settings(KODIFY_ADMIN_API_KEY=ADMIN_KEY):
        assert key_client(plain).get("/api/users/").status_code == 401


# --- errors, schema and docs -------------------------------------------------------------


def test_unknown_paths_and_objects_answer_404_in_json(admin_client: APIClient) -> None:
    for path in ("/api/nothing-here/", "/api/users/999999/", "/api/tokens/999999/"):
        response = admin_client.get(path)
        assert response.status_code == 404
        assert response.json()["detail"]


def test_schema_generates_without_warnings_and_hides_the_digest(tmp_path: Path) -> None:
    out = tmp_path / "schema.json"
    call_command("spectacular", "--validate", "--fail-on-warn", "--format", "openapi-json",
                 "--file", str(out))  # fmt: skip
    schema = json.loads(out.read_text())
    assert {"/api/users/", "/api/tokens/", "/api/tokens/{id}/revoke/", "/api/audit/"} <= set(
        schema["paths"]
    )
    components = schema["components"]
    assert "digest" not in json.dumps(components["schemas"])
    assert "token" in components["schemas"]["IssuedToken"]["properties"]
    assert "token" not in components["schemas"]["ApiToken"]["properties"]
    assert components["securitySchemes"]["adminApiKey"]["scheme"] == "bearer"
    assert "delete" not in schema["paths"]["/api/users/{id}/"]


def test_schema_is_served(admin_client: APIClient) -> None:
    response = APIClient().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    assert "/api/tokens/" in json.loads(response.content)["paths"]


def test_swagger_ui_works_offline(admin_client: APIClient) -> None:
    response = admin_client.get("/api/docs/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "SwaggerUIBundle" in page and "/api/schema/" in page
    assert not re.search(r"https?://|\"//|'//", page), "the page references another host"
    assets = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert any(asset.endswith("swagger-ui-bundle.js") for asset in assets)
    assert '"validatorUrl": null' in page  # no schema sent to validator.swagger.io
    for asset in assets:
        assert asset.startswith(settings.STATIC_URL) or asset.startswith("/" + settings.STATIC_URL)
        relative = asset.split(settings.STATIC_URL, 1)[1]
        assert finders.find(relative), f"{asset} is not shipped with the app"
