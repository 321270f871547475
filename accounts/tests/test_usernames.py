"""API usernames: no control or invisible characters, no surrounding spaces, and unique
whatever their case, in the management API, the console, the services and the database."""

from __future__ import annotations

import importlib
import os
from typing import Any

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from accounts import roles, services
from accounts.models import ApiUser

pytestmark = [pytest.mark.smoke, pytest.mark.django_db]

BAD_NAMES = [
    "ada\r\nINFO forged log line",
    "ada\n",
    "\tada",
    " ada",
    "ada ",
    "ad\x00a",
    "ad\x1ba",  # ESC: terminal escapes
    "ad\u200ba",  # zero-width space (Cf)
    "ad\u202ea",  # right-to-left override (Cf)
    "ad\u2028a",  # line separator (Zl)
    "ad\x85a",  # NEL (Cc)
]


@pytest.fixture
def admin_client() -> APIClient:
    account = get_user_model().objects.create_user("boss", password=None, is_staff=True)
    account.groups.add(Group.objects.get(name=roles.ADMINISTRATORS))
    client = APIClient()
    client.force_login(account)
    return client


@pytest.fixture
def console(admin_client: APIClient) -> Client:
    client = Client()
    client.force_login(get_user_model().objects.get(username="boss"))
    return client


@pytest.fixture
def ada() -> ApiUser:
    return services.create_user(username="ada")


@pytest.mark.parametrize("name", BAD_NAMES)
def test_the_api_refuses_control_characters_and_surrounding_spaces(
    admin_client: APIClient, name: str
) -> None:
    response = admin_client.post("/api/users/", {"username": name}, format="json")
    assert response.status_code == 400, response.content
    messages = " ".join(response.json()["username"])
    assert "start or end with a space" in messages or "control or invisible" in messages
    assert not ApiUser.objects.exists()


def test_spaces_inside_a_name_and_letters_of_any_script_are_fine(admin_client: APIClient) -> None:
    for name in ("Ada Lovelace", "José", "ада", "a.b-c_d@example"):
        response = admin_client.post("/api/users/", {"username": name}, format="json")
        assert response.status_code == 201, response.content


def test_the_api_refuses_a_name_that_differs_only_in_case(
    admin_client: APIClient, ada: ApiUser
) -> None:
    response = admin_client.post("/api/users/", {"username": "ADA"}, format="json")
    assert response.status_code == 400
    assert response.json() == {
        "username": ["This username is taken: usernames are unique regardless of case."]
    }
    bob = services.create_user(username="bob")
    response = admin_client.patch(f"/api/users/{bob.pk}/", {"username": "Ada"}, format="json")
    assert response.status_code == 400
    assert "regardless of case" in response.json()["username"][0]
    bob.refresh_from_db()
    assert bob.username == "bob"
    # Changing the case of one's own name is no clash.
    response = admin_client.patch(f"/api/users/{ada.pk}/", {"username": "Ada"}, format="json")
    assert response.status_code == 200, response.content
    response = admin_client.patch(f"/api/users/{ada.pk}/", {"username": "a\nb"}, format="json")
    assert response.status_code == 400 and "username" in response.json()


def test_the_services_refuse_too(ada: ApiUser) -> None:
    with pytest.raises(ValidationError) as caught:
        services.create_user(username="ADA")
    assert caught.value.message_dict == {
        "username": ["This username is taken: usernames are unique regardless of case."]
    }
    with pytest.raises(ValidationError) as caught:
        services.create_user(username="eve\r\n")
    assert list(caught.value.message_dict) == ["username"]


def test_the_database_refuses_a_case_duplicate_even_without_validation(ada: ApiUser) -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        ApiUser.objects.create(username="ADA")


def user_form(username: str) -> dict[str, Any]:
    return {
        "username": username,
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


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("ADA", "regardless of case"),
        ("eve\r\nforged", "control or invisible"),
        ("eve\n", "start or end with a space"),
    ],
)
def test_the_console_refuses_with_the_same_messages(
    console: Client, ada: ApiUser, name: str, message: str
) -> None:
    response = console.post(reverse("admin:accounts_apiuser_add"), user_form(name))
    assert response.status_code == 200  # the form again, with its error
    assert message in " ".join(response.context["adminform"].form.errors["username"])
    assert list(ApiUser.objects.values_list("username", flat=True)) == ["ada"]


@pytest.mark.skipif(not os.environ.get("DB_URL"), reason="needs PostgreSQL's DDL in a transaction")
def test_the_migration_stops_on_existing_case_duplicates(ada: ApiUser) -> None:
    migration = importlib.import_module("accounts.migrations.0003_username_case_insensitive")
    [constraint] = ApiUser._meta.constraints
    with connection.schema_editor() as editor:  # as before the migration
        editor.remove_constraint(ApiUser, constraint)
        ApiUser.objects.bulk_create([ApiUser(username="ADA"), ApiUser(username="bob")])
        with pytest.raises(RuntimeError, match=r"differ only in case: 'ada', 'ADA'\. Rename"):
            migration.refuse_case_duplicates(apps, editor)
