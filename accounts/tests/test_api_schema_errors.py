"""The management API's schema documents the 400/401/403/404 it answers, with the body
it answers them with (accounts/api_schema.py)."""

from __future__ import annotations

from functools import cache
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from drf_spectacular.generators import SchemaGenerator
from jsonschema import Draft202012Validator
from rest_framework.test import APIClient

from accounts import roles, services

pytestmark = [pytest.mark.smoke, pytest.mark.django_db]


@cache
def schema() -> dict[str, Any]:
    return SchemaGenerator().get_schema(request=None, public=True)


def check(response: Any, path: str, method: str) -> None:
    """The answer's status is documented for the operation, and its body fits."""
    doc = schema()
    responses = doc["paths"][path][method]["responses"]
    status = str(response.status_code)
    assert status in responses, f"{method.upper()} {path} answered undocumented {status}"
    body_schema = responses[status]["content"]["application/json"]["schema"]
    validator = Draft202012Validator({**body_schema, "components": doc["components"]})
    errors = [error.message for error in validator.iter_errors(response.json())]
    assert not errors, f"{method.upper()} {path} {status}: {errors} {response.json()}"


def client_of(role: str) -> APIClient:
    account = get_user_model().objects.create_user(role, password=None, is_staff=True)
    account.groups.add(Group.objects.get(name=role))
    client = APIClient()
    client.force_login(account)
    return client


def test_every_operation_documents_its_errors() -> None:
    for path, item in schema()["paths"].items():
        for method, operation in item.items():
            statuses = set(operation["responses"])
            assert {"401", "403"} <= statuses, (method, path)
            if "{id}" in path:
                assert "404" in statuses, (method, path)
            if "requestBody" in operation:
                assert "400" in statuses, (method, path)


def test_error_answers_match_the_schema() -> None:
    ada = services.create_user(username="ada")
    token, _ = services.issue_token(user=ada, name="laptop")

    anonymous = APIClient()
    check(anonymous.get("/api/users/"), "/api/users/", "get")
    check(anonymous.post("/api/tokens/", {}, format="json"), "/api/tokens/", "post")

    auditor = client_of(roles.AUDITORS)
    body = {"username": "eve"}
    check(auditor.post("/api/users/", body, format="json"), "/api/users/", "post")
    revoke = f"/api/tokens/{token.pk}/revoke/"
    check(auditor.post(revoke), "/api/tokens/{id}/revoke/", "post")

    admin = client_of(roles.ADMINISTRATORS)
    for path in ("/api/users/999999/", "/api/tokens/999999/", "/api/audit/999999/"):
        response = admin.get(path)
        assert response.status_code == 404
        check(response, path.replace("999999", "{id}"), "get")
    response = admin.patch("/api/tokens/999999/", {"expires_at": None}, format="json")
    check(response, "/api/tokens/{id}/", "patch")

    refused = admin.post("/api/users/", {"username": "a\nb", "allowed_models": [""]}, format="json")
    assert refused.status_code == 400
    check(refused, "/api/users/", "post")
    refused = admin.patch(f"/api/users/{ada.pk}/", {"requests_per_minute": -1}, format="json")
    check(refused, "/api/users/{id}/", "patch")
    refused = admin.post("/api/tokens/", {"user": ada.pk}, format="json")
    check(refused, "/api/tokens/", "post")
    refused = admin.get("/api/tokens/", {"state": "asleep"})
    assert refused.status_code == 400
    check(refused, "/api/tokens/", "get")
    refused = admin.get("/api/audit/", {"since": "yesterday"})
    check(refused, "/api/audit/", "get")


def test_odd_inputs_get_documented_answers_not_server_errors() -> None:
    admin = client_of(roles.ADMINISTRATORS)
    # A filter's own refusal (a NUL) comes as the fields' errors, never a bare list.
    nul = admin.get("/api/users/", {"search": "a\x00b"})
    assert nul.status_code == 400 and isinstance(nul.json(), dict)
    check(nul, "/api/users/", "get")
    # A body that is not JSON: {"detail": …}, documented for 400 too.
    garbage = admin.generic("POST", "/api/users/", "{not json", "application/json")
    assert garbage.status_code == 400
    check(garbage, "/api/users/", "post")
    # Offsets PostgreSQL refuses (past ±15:59) are compared in UTC instead.
    for since in ("2030-01-01T00:00:00+20:00", "2030-01-01T00:00:00-23:59"):
        answer = admin.get("/api/audit/", {"since": since})
        assert answer.status_code == 200, answer.content
