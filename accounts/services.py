"""Writes on API users and tokens. Every change leaves an :class:`AuditEvent`.

Callers pass the acting console user as ``actor`` (None for the command line, which is
recorded under ``actor_name``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts import tokens
from accounts.models import ApiToken, ApiUser, AuditEvent
from accounts.tokens import token_hash_key

TOKEN_ATTEMPTS = 5


def audit(
    *,
    actor: Any,
    action: str,
    target: Any = None,
    details: Mapping[str, Any] | None = None,
    actor_name: str | None = None,
) -> AuditEvent:
    authenticated = actor is not None and getattr(actor, "is_authenticated", False)
    return AuditEvent.objects.create(
        actor=actor if authenticated else None,
        actor_name=actor_name or (actor and actor.get_username()) or "command line",
        action=action,
        target_type=type(target).__name__ if target is not None else "",
        target_id=str(getattr(target, "pk", "") or ""),
        target=str(target) if target is not None else "",
        details=dict(details or {}),
    )


@transaction.atomic
def create_user(*, username: str, actor: Any = None, **fields: Any) -> ApiUser:
    user = ApiUser(username=username, **fields)
    user.full_clean()
    user.save()
    audit(actor=actor, action="user.created", target=user)
    return user


@transaction.atomic
def update_user(*, user: ApiUser, actor: Any = None, **fields: Any) -> ApiUser:
    changed = {}
    for name, value in fields.items():
        if getattr(user, name) != value:
            changed[name] = _jsonable(value)
            setattr(user, name, value)
    if changed:
        user.full_clean()
        user.save()
        audit(actor=actor, action="user.changed", target=user, details=changed)
    return user


def set_user_active(*, user: ApiUser, active: bool, actor: Any = None) -> ApiUser:
    if user.is_active == active:
        return user
    with transaction.atomic():
        user.is_active = active
        user.save(update_fields=["is_active", "updated_at"])
        audit(actor=actor, action="user.enabled" if active else "user.disabled", target=user)
    return user


def issue_token(
    *,
    user: ApiUser,
    name: str,
    actor: Any = None,
    expires_at: datetime | None = None,
    comment: str = "",
) -> tuple[ApiToken, str]:
    """Create a token; returns it with its plain text, which is never available again."""
    if expires_at is not None and expires_at <= timezone.now():
        raise ValueError("The expiry date must be in the future.")
    key = token_hash_key()
    for attempt in range(TOKEN_ATTEMPTS):
        new = tokens.generate(key)
        try:
            with transaction.atomic():
                token = ApiToken.objects.create(
                    user=user,
                    name=name,
                    comment=comment,
                    prefix=new.prefix,
                    digest=new.digest,
                    created_by=actor if getattr(actor, "is_authenticated", False) else None,
                    expires_at=expires_at,
                )
                audit(
                    actor=actor,
                    action="token.issued",
                    target=token,
                    details={
                        "user": user.username,
                        "expires_at": _jsonable(expires_at),
                    },
                )
        except IntegrityError:  # the 8-character lookup id collided; draw again
            if attempt == TOKEN_ATTEMPTS - 1:
                raise
            continue
        return token, new.plain
    raise AssertionError("unreachable")


def revoke_token(*, token: ApiToken, actor: Any = None) -> ApiToken:
    if token.revoked_at is not None:
        return token
    with transaction.atomic():
        token.revoked_at = timezone.now()
        token.revoked_by = actor if getattr(actor, "is_authenticated", False) else None
        token.save(update_fields=["revoked_at", "revoked_by"])
        audit(
            actor=actor, action="token.revoked", target=token, details={"user": token.user.username}
        )
    return token


def expiry_refusal(token: ApiToken, expires_at: datetime | None) -> str | None:
    """Why ``token``'s expiry may not become ``expires_at`` (None: it may).

    A revoked or expired token stays dead: giving it a later expiry (or none) would bring
    back a credential that everyone was told is gone.  A new expiry must be in the future;
    to end a token now, revoke it.
    """
    now = timezone.now()
    if token.revoked_at is not None:
        return "This token is revoked: its expiry cannot change. Issue a new token."
    if token.expires_at is not None and token.expires_at <= now:
        return (
            f"This token expired at {token.expires_at.isoformat()}: an expired token cannot "
            "be revived. Issue a new token."
        )
    if expires_at is not None and expires_at <= now:
        return "The expiry date must be in the future (to end a token now, revoke it)."
    return None


def set_token_expiry(
    *, token: ApiToken, expires_at: datetime | None, actor: Any = None
) -> ApiToken:
    """Change a live token's expiry; ValidationError (on ``expires_at``) when
    :func:`expiry_refusal` says no."""
    with transaction.atomic():
        # Checked on the row as it is now: a revocation or an expiry may have come since
        # the caller read it.
        current = ApiToken.objects.select_for_update().get(pk=token.pk)
        refusal = expiry_refusal(current, expires_at)
        if refusal is not None:
            raise ValidationError({"expires_at": refusal}, code="expiry_refused")
        if current.expires_at == expires_at:
            token.expires_at = expires_at
            return token
        old = current.expires_at
        token.expires_at = expires_at
        token.save(update_fields=["expires_at"])
        audit(
            actor=actor,
            action="token.expiry_changed",
            target=token,
            details={"from": _jsonable(old), "to": _jsonable(expires_at)},
        )
    return token


def record_token_use(*, uses: Iterable[tuple[int, datetime, str]]) -> None:
    """Store when each token was last used and by which client (batched by the gateway)."""
    for token_id, at, user_agent in uses:
        ApiToken.objects.filter(pk=token_id).update(
            last_used_at=at, last_used_user_agent=user_agent[:300]
        )


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return value


CONSOLE_ROLES = {"administrator": "Administrators", "auditor": "Auditors"}


@transaction.atomic
def create_console_user(
    *, username: str, role: str, password: str | None = None, email: str = "", actor: Any = None
) -> tuple[Any, str]:
    """A console account in one of the roles (``administrator`` or ``auditor``); returns
    it and its password (a random one unless given), which is stored hashed only.

    Staff status comes with the role: without it Django's admin refuses the login with
    a message that names no cause.
    """
    import secrets

    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    if role not in CONSOLE_ROLES:
        raise ValidationError(
            f"Unknown role {role!r}: choose one of {', '.join(sorted(CONSOLE_ROLES))}."
        )
    user_model = get_user_model()
    name = username.strip()
    if not name:
        raise ValidationError("A console user needs a name.")
    if user_model.objects.filter(username__iexact=name).exists():
        raise ValidationError(f"A console user named {name!r} exists already.")
    group = Group.objects.filter(name=CONSOLE_ROLES[role]).first()
    if group is None:
        raise ValidationError(
            f"The role group {CONSOLE_ROLES[role]!r} is missing: run manage.py kodify_migrate."
        )
    plain = password or secrets.token_urlsafe(12)
    user = user_model(username=name, email=email, is_staff=True, is_active=True)
    user.set_password(plain)
    user.full_clean(exclude=["password"])
    user.save()
    user.groups.add(group)
    audit(actor=actor, action="console_user.create", target=user, details={"role": role})
    return user, plain


@transaction.atomic
def set_console_role(*, user: Any, role: str, actor: Any = None) -> None:
    """Give a console account exactly one role (its other groups kept) and the staff
    status the console's login needs."""
    from django.contrib.auth.models import Group

    if role not in CONSOLE_ROLES:
        raise ValidationError(
            f"Unknown role {role!r}: choose one of {', '.join(sorted(CONSOLE_ROLES))}."
        )
    before = console_role(user)
    user.groups.remove(*Group.objects.filter(name__in=CONSOLE_ROLES.values()))
    group = Group.objects.filter(name=CONSOLE_ROLES[role]).first()
    if group is None:
        raise ValidationError(
            f"The role group {CONSOLE_ROLES[role]!r} is missing: run manage.py kodify_migrate."
        )
    user.groups.add(group)
    if not user.is_staff:
        user.is_staff = True
        user.save(update_fields=["is_staff"])
    if before != role:
        audit(
            actor=actor,
            action="console_user.role",
            target=user,
            details={"role": role, "before": before},
        )


def role_choice(user: Any) -> str:
    """The role a console account's form shows: its one role, else none."""
    names = set(user.groups.values_list("name", flat=True))
    held = [role for role, group in CONSOLE_ROLES.items() if group in names]
    return held[0] if len(held) == 1 else ""


def console_role(user: Any) -> str:
    """The role a console account holds, in words (``superuser`` above both roles)."""
    if user.is_superuser:
        return "superuser"
    names = set(user.groups.values_list("name", flat=True))
    held = [role for role, group in CONSOLE_ROLES.items() if group in names]
    return ", ".join(held) or "none"
