"""The issue-token page: who may issue, the one-use form nonces, and the page that shows
a new token once."""

from __future__ import annotations

import secrets
from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views.decorators.debug import sensitive_variables

from accounts import services
from accounts.models import ApiUser

ISSUE_NONCES_SESSION_KEY = "kodify.issue_token_nonces"
MAX_OPEN_ISSUE_FORMS = 20


def may_issue(request: HttpRequest) -> bool:
    return request.user.has_perm("accounts.add_apitoken")


def new_nonce(request: HttpRequest) -> str:
    nonce = secrets.token_urlsafe(16)
    open_forms = request.session.get(ISSUE_NONCES_SESSION_KEY, [])
    request.session[ISSUE_NONCES_SESSION_KEY] = [*open_forms, nonce][-MAX_OPEN_ISSUE_FORMS:]
    return nonce


def take_nonce(request: HttpRequest, nonce: str) -> bool:
    open_forms = request.session.get(ISSUE_NONCES_SESSION_KEY, [])
    if nonce not in open_forms:
        return False
    request.session[ISSUE_NONCES_SESSION_KEY] = [n for n in open_forms if n != nonce]
    return True


@sensitive_variables("plain", "context")
def issue_and_show(
    model_admin: admin.ModelAdmin[ApiUser],
    request: HttpRequest,
    user: ApiUser,
    data: dict[str, Any],
) -> HttpResponse:
    # Rendered in the answer to the POST, not behind a redirect: the plain token then
    # lives nowhere but in this one response (no session, no message, no URL).
    token, plain = services.issue_token(
        user=user,
        name=data["name"],
        actor=request.user,
        expires_at=data["expires_at"],
        comment=data["comment"],
    )
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.opts,
        "title": "Token issued",
        "original": user,
        "user_url": reverse("admin:accounts_apiuser_change", args=[user.pk]),
        "token": token,
        "plain_token": plain,
        "api_base": request.build_absolute_uri("/v1"),
    }
    response = TemplateResponse(request, "admin/accounts/apiuser/token_issued.html", context)
    response["Cache-Control"] = "no-store"
    return response
