"""Reads on API users and tokens."""

from __future__ import annotations

import re

from django.db.models import QuerySet

from accounts.models import ApiToken, ApiUser
from accounts.tokens import TokenRecord


def token_record(prefix: str) -> TokenRecord | None:
    token = (
        ApiToken.objects.select_related("user")
        .only(
            "id",
            "digest",
            "revoked_at",
            "expires_at",
            "user__id",
            "user__username",
            "user__is_active",
            "user__allowed_models",
            "user__requests_per_minute",
            "user__max_concurrent",
        )
        .filter(prefix=prefix)
        .first()
    )
    if token is None:
        return None
    user = token.user
    return TokenRecord(
        token_id=token.pk,
        digest=token.digest,
        user_id=user.pk,
        username=user.username,
        revoked=token.revoked_at is not None,
        expires_at=token.expires_at.timestamp() if token.expires_at else None,
        user_active=user.is_active,
        allowed_models=frozenset(m for m in user.allowed_models or () if isinstance(m, str)),
        requests_per_minute=user.requests_per_minute,
        max_concurrent=user.max_concurrent,
    )


def tokens_of(user: ApiUser) -> QuerySet[ApiToken]:
    return ApiToken.objects.filter(user=user).order_by("-created_at")


_NUMBERED_NAME = re.compile(r"token-(\d+)")


def next_token_name(user: ApiUser) -> str:
    """A name for a token issued without one: ``token-<n>``, numbered past every token of
    ``user`` so named (revoked ones too), so that it tells the user's tokens apart."""
    names = ApiToken.objects.filter(user=user, name__startswith="token-").values_list(
        "name", flat=True
    )
    numbers = [int(found[1]) for name in names if (found := _NUMBERED_NAME.fullmatch(name))]
    return f"token-{max(numbers, default=0) + 1}"


def users() -> QuerySet[ApiUser]:
    return ApiUser.objects.all()
