"""Console accounts made in the console with a role, as the management command makes
them: no staff flag or group to set by hand."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from accounts import services
from accounts.models import AuditEvent
from accounts.roles import ADMINISTRATORS, AUDITORS
from journal.tests.entries import PASSWORD, console_account

pytestmark = [pytest.mark.django_db, pytest.mark.smoke]

NEW_PASSWORD = "a-new-console-password-9"


@pytest.fixture
def administrator(settings: Any) -> Client:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    client = Client()
    client.force_login(console_account("ada", ADMINISTRATORS))
    return client


def groups_of(name: str) -> list[str]:
    return sorted(User.objects.get(username=name).groups.values_list("name", flat=True))


def test_an_auditor_made_in_the_console_logs_in_and_only_reads(administrator: Client) -> None:
    response = administrator.post(
        reverse("admin:auth_user_add"),
        {
            "username": "audrey",
            "role": "auditor",
            "password1": NEW_PASSWORD,
            "password2": NEW_PASSWORD,
            "usable_password": "true",
        },
    )
    assert response.status_code == 302, response.content.decode()[-3000:]
    made = User.objects.get(username="audrey")
    assert made.is_staff and not made.is_superuser
    assert groups_of("audrey") == [AUDITORS]
    assert AuditEvent.objects.filter(action="console_user.create").exists()

    auditor = Client()
    signed_in = auditor.post(
        reverse("admin:login"), {"username": "audrey", "password": NEW_PASSWORD}
    )
    assert signed_in.status_code == 302
    assert auditor.get(reverse("journal:list")).status_code == 200
    assert auditor.get(reverse("admin:accounts_apiuser_add")).status_code == 403


def test_the_add_page_asks_for_a_role_not_staff_flags(administrator: Client) -> None:
    html = administrator.get(reverse("admin:auth_user_add")).content.decode()
    assert 'name="role"' in html and "Auditor: reads the journal" in html
    assert 'name="is_staff"' not in html
    # A role is required.
    response = administrator.post(
        reverse("admin:auth_user_add"),
        {"username": "nobody", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    )
    assert response.status_code == 200 and not User.objects.filter(username="nobody").exists()


def test_a_role_changes_the_group_and_keeps_the_others(administrator: Client) -> None:
    account = console_account("bob", AUDITORS)
    services.set_console_role(user=account, role="administrator")
    assert groups_of("bob") == [ADMINISTRATORS]
    html = administrator.get(reverse("admin:auth_user_change", args=[account.pk])).content
    assert b'<option value="administrator" selected>' in html
    lister = administrator.get(reverse("admin:auth_user_changelist")).content.decode()
    assert "administrator" in lister
    with pytest.raises(Exception, match="Unknown role"):
        services.set_console_role(user=account, role="root")


def test_an_account_without_staff_status_gets_it_with_its_role() -> None:
    account = User.objects.create_user("carol", password=PASSWORD)
    services.set_console_role(user=account, role="auditor")
    account.refresh_from_db()
    assert account.is_staff and groups_of("carol") == [AUDITORS]
