"""Writes on API users and tokens, and the audit trail each one leaves."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from accounts import selectors, services, tokens
from accounts.models import ApiToken, AuditEvent

pytestmark = [pytest.mark.smoke, pytest.mark.django_db]


@pytest.fixture
def admin() -> object:
    return get_user_model().objects.create_user("root", password="x", is_staff=True)


def read(prefix: str) -> selectors.TokenRecord:
    record = selectors.token_record(prefix)
    assert record is not None
    return record


def actions() -> list[str]:
    return list(AuditEvent.objects.order_by("at", "pk").values_list("action", flat=True))


def test_issue_token_stores_only_prefix_and_keyed_digest(admin: object) -> None:
    user = services.create_user(username="ada", actor=admin)
    token, plain = services.issue_token(user=user, name="laptop", actor=admin)
    stored = ApiToken.objects.get(pk=token.pk)
    assert plain.startswith(stored.prefix) and plain != stored.prefix
    assert plain not in stored.digest
    assert tokens.matches(services.token_hash_key(), plain.encode(), stored.digest)
    assert stored.created_by == admin
    assert stored.state == "active"
    assert actions() == ["user.created", "token.issued"]
    event = AuditEvent.objects.get(action="token.issued")
    assert event.actor_name == "root" and event.details["user"] == "ada"
    assert plain not in str(event.details) and plain not in event.target


def test_token_record_reflects_revocation_expiry_and_disabling(admin: object) -> None:
    user = services.create_user(username="bob", allowed_models=["m1"], requests_per_minute=9)
    token, _ = services.issue_token(user=user, name="ci")
    record = selectors.token_record(token.prefix)
    assert record is not None
    assert (record.user_id, record.allowed_models, record.requests_per_minute) == (
        user.pk,
        frozenset({"m1"}),
        9,
    )
    soon = timezone.now() + timedelta(days=1)
    services.set_token_expiry(token=token, expires_at=soon, actor=admin)
    assert read(token.prefix).expires_at == pytest.approx(soon.timestamp())
    services.set_user_active(user=user, active=False, actor=admin)
    assert read(token.prefix).user_active is False
    services.revoke_token(token=token, actor=admin)
    assert read(token.prefix).revoked is True
    assert token.state == "revoked"
    assert actions()[-3:] == ["token.expiry_changed", "user.disabled", "token.revoked"]
    assert selectors.token_record("kdf_nothere") is None


def test_repeated_changes_leave_no_extra_audit_events() -> None:
    user = services.create_user(username="cy")
    token, _ = services.issue_token(user=user, name="t")
    services.revoke_token(token=token)
    services.revoke_token(token=token)
    services.set_user_active(user=user, active=True)
    services.update_user(user=user, full_name="")
    assert actions() == ["user.created", "token.issued", "token.revoked"]
    assert AuditEvent.objects.get(action="token.revoked").actor_name == "command line"


def test_update_user_records_what_changed() -> None:
    user = services.create_user(username="dee")
    services.update_user(user=user, full_name="Dee Dee", max_concurrent=2)
    event = AuditEvent.objects.get(action="user.changed")
    assert event.details == {"full_name": "Dee Dee", "max_concurrent": 2}


def test_expiry_in_the_past_is_refused() -> None:
    user = services.create_user(username="eve")
    with pytest.raises(ValueError, match="future"):
        services.issue_token(user=user, name="t", expires_at=timezone.now() - timedelta(1))
    assert not ApiToken.objects.exists()


def test_record_token_use_stores_time_and_client() -> None:
    user = services.create_user(username="fay")
    token, _ = services.issue_token(user=user, name="t")
    at = timezone.now()
    services.record_token_use(uses=[(token.pk, at, "JetBrains/2025.1 Kodify/1.2")])
    token.refresh_from_db()
    assert token.last_used_at == at
    assert token.last_used_user_agent == "JetBrains/2025.1 Kodify/1.2"


def test_roles_exist_with_their_permissions() -> None:
    from django.contrib.auth.models import Group

    admins = set(
        Group.objects.get(name="Administrators").permissions.values_list("codename", flat=True)
    )
    auditors = set(
        Group.objects.get(name="Auditors").permissions.values_list("codename", flat=True)
    )
    assert {"add_apitoken", "change_apitoken", "view_auditevent", "add_apiuser"} <= admins
    # The journal app adds its read permissions to both roles (journal/apps.py).
    assert {"view_entry", "view_event"} <= admins
    # Auditors read; the audit trail too (who changed which user or token), and the
    # action templates and defaults with their versions (gateway/apps.py).
    assert auditors == {
        "view_apiuser",
        "view_apitoken",
        "view_auditevent",
        "view_entry",
        "view_event",
        "view_actiontemplate",
        "view_actionsetting",
    }
