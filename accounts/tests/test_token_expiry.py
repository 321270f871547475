"""A token's expiry changes only while the token is live, and only to the future (or to
none): an expired or revoked token is never revived, through the API or the console."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from accounts import roles, services
from accounts.models import ApiToken, AuditEvent

pytestmark = [pytest.mark.smoke, pytest.mark.django_db]

NOW = datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC)


@pytest.fixture
def clock() -> Iterator[time_machine.Traveller]:
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def administrator(clock: Any) -> Any:
    account = get_user_model().objects.create_user("boss", password=None, is_staff=True)
    account.groups.add(Group.objects.get(name=roles.ADMINISTRATORS))
    return account


@pytest.fixture
def api(administrator: Any) -> APIClient:
    client = APIClient()
    client.force_login(administrator)
    return client


@pytest.fixture
def token(clock: Any) -> ApiToken:
    user = services.create_user(username="ada")
    issued, _ = services.issue_token(user=user, name="laptop", expires_at=NOW + timedelta(hours=1))
    return issued


def patch(api: APIClient, token: ApiToken, expires_at: datetime | None) -> Any:
    body = {"expires_at": expires_at.isoformat() if expires_at else None}
    return api.patch(f"/api/tokens/{token.pk}/", body, format="json")


def expiry_changes() -> int:
    return AuditEvent.objects.filter(action="token.expiry_changed").count()


def test_a_live_token_gets_a_later_expiry_or_none(api: APIClient, token: ApiToken) -> None:
    later = patch(api, token, NOW + timedelta(days=30))
    assert later.status_code == 200, later.content
    assert later.json()["expires_at"] == "2031-06-05T07:08:09Z"
    cleared = patch(api, token, None)
    assert cleared.status_code == 200
    assert cleared.json()["expires_at"] is None and cleared.json()["state"] == "active"
    assert expiry_changes() == 2


@pytest.mark.parametrize("offset", [timedelta(0), -timedelta(seconds=1), -timedelta(days=400)])
def test_a_new_expiry_must_be_in_the_future(
    api: APIClient, token: ApiToken, offset: timedelta
) -> None:
    response = patch(api, token, NOW + offset)
    assert response.status_code == 400
    assert response.json() == {
        "expires_at": ["The expiry date must be in the future (to end a token now, revoke it)."]
    }
    token.refresh_from_db()
    assert token.expires_at == NOW + timedelta(hours=1) and token.state == "active"
    assert expiry_changes() == 0


@pytest.mark.parametrize("new", [None, NOW + timedelta(days=30)])
def test_an_expired_token_is_not_revived(
    api: APIClient, token: ApiToken, clock: time_machine.Traveller, new: datetime | None
) -> None:
    clock.shift(timedelta(hours=2))  # past its expiry
    response = patch(api, token, new)
    assert response.status_code == 400
    [message] = response.json()["expires_at"]
    assert message == (
        "This token expired at 2031-05-06T08:08:09+00:00: an expired token cannot be "
        "revived. Issue a new token."
    )
    token.refresh_from_db()
    assert token.expires_at == NOW + timedelta(hours=1) and token.state == "expired"
    assert expiry_changes() == 0


@pytest.mark.parametrize("new", [None, NOW + timedelta(days=30)])
def test_a_revoked_token_is_not_revived(
    api: APIClient, token: ApiToken, new: datetime | None
) -> None:
    services.revoke_token(token=token)
    response = patch(api, token, new)
    assert response.status_code == 400
    assert "revoked" in response.json()["expires_at"][0]
    token.refresh_from_db()
    assert token.state == "revoked" and token.expires_at == NOW + timedelta(hours=1)


def test_the_service_checks_the_row_as_it_is_now(token: ApiToken) -> None:
    stale = ApiToken.objects.get(pk=token.pk)
    services.revoke_token(token=token)  # after the caller read it
    with pytest.raises(ValidationError, match="revoked"):
        services.set_token_expiry(token=stale, expires_at=None)
    assert ApiToken.objects.get(pk=token.pk).expires_at == NOW + timedelta(hours=1)


def test_the_console_does_not_revive_an_expired_token(
    administrator: Any, token: ApiToken, clock: time_machine.Traveller
) -> None:
    console = Client()
    console.force_login(administrator)
    clock.shift(timedelta(hours=2))
    later = NOW + timedelta(days=30)
    response = console.post(
        reverse("admin:accounts_apitoken_change", args=[token.pk]),
        {"expires_at_0": later.strftime("%Y-%m-%d"), "expires_at_1": later.strftime("%H:%M:%S")},
    )
    assert response.status_code == 200  # the form again, with its error
    errors = response.context["adminform"].form.errors["expires_at"]
    assert "cannot be revived" in errors[0]
    assert ApiToken.objects.get(pk=token.pk).state == "expired"
