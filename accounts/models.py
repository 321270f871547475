"""API users (the people behind IDE plugins), their tokens, and the console's audit trail.

Console accounts (administrators, auditors) are Django's own users; API users are a table
of their own, named by ``USERS_TABLE`` as in the administrator guide.
"""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone

from accounts.usernames import TAKEN_CODE, TAKEN_MESSAGE, validate_username

DEFAULT_USERS_TABLE = "kodify_api_users"
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def users_table_parts(name: str | None = None) -> tuple[str | None, str]:
    """``(schema, table)`` of USERS_TABLE; ValueError when it is not a plain identifier."""
    name = name or settings.USERS_TABLE or DEFAULT_USERS_TABLE
    parts = name.split(".")
    if len(parts) > 2 or not all(_IDENTIFIER.match(part) for part in parts):
        raise ValueError(
            f"USERS_TABLE={name!r} is not a table name: use letters, digits and _, "
            "optionally with a schema (schema.table)."
        )
    return (parts[0], parts[1]) if len(parts) == 2 else (None, parts[0])


def users_db_table() -> str:
    """The name Django should use; a schema-qualified one is pre-quoted for PostgreSQL."""
    try:
        schema, table = users_table_parts()
    except ValueError:
        return DEFAULT_USERS_TABLE  # reported by the check kodify.E020
    return f'"{schema}"."{table}"' if schema else table


class ApiUser(models.Model):
    # What an administrator may set, in the console and through the API alike.
    EDITABLE_FIELDS = (
        "username",
        "full_name",
        "email",
        "comment",
        "is_active",
        "requests_per_minute",
        "max_concurrent",
        "allowed_models",
    )

    username = models.CharField(max_length=150, unique=True, validators=[validate_username])
    full_name = models.CharField(max_length=200, blank=True)
    email = models.EmailField(blank=True)
    comment = models.TextField(blank=True)
    is_active = models.BooleanField(
        default=True, help_text="A disabled user's tokens are refused at once."
    )
    requests_per_minute = models.PositiveIntegerField(
        null=True, blank=True, help_text="Empty: the server default (KODIFY_RATE_LIMIT_PER_MINUTE)."
    )
    max_concurrent = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Requests in flight at once. Empty: the server default (KODIFY_MAX_CONCURRENT).",
    )
    allowed_models = models.JSONField(
        default=list, blank=True, help_text="Model names this user may call; empty: all."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = users_db_table()
        ordering = ("username",)
        verbose_name = "API user"
        constraints = (
            models.UniqueConstraint(
                Lower("username"),
                name="accounts_apiuser_username_ci_unique",
                violation_error_code=TAKEN_CODE,
                violation_error_message=TAKEN_MESSAGE,
            ),
        )

    def __str__(self) -> str:
        return self.username

    def validate_constraints(self, exclude: Any = None) -> None:
        # A constraint on an expression is reported for the whole object: name the field.
        try:
            super().validate_constraints(exclude=exclude)
        except ValidationError as exc:
            errors = exc.update_error_dict({})
            general = errors.pop(NON_FIELD_ERRORS, [])
            taken = [e for e in general if getattr(e, "code", None) == TAKEN_CODE]
            if taken:
                errors.setdefault("username", []).extend(taken)
            rest = [e for e in general if e not in taken]
            if rest:
                errors[NON_FIELD_ERRORS] = rest
            raise ValidationError(errors) from exc


class TokenQuerySet(models.QuerySet["ApiToken"]):
    def usable(self) -> TokenQuerySet:
        now = timezone.now()
        return self.filter(revoked_at__isnull=True, user__is_active=True).filter(
            models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=now)
        )


class ApiToken(models.Model):
    user = models.ForeignKey(ApiUser, on_delete=models.CASCADE, related_name="tokens")
    name = models.CharField(max_length=100, help_text="Where it is used, e.g. 'laptop VS Code'.")
    comment = models.TextField(blank=True)
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    digest = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_used_user_agent = models.CharField(max_length=300, blank=True, editable=False)

    objects = TokenQuerySet.as_manager()

    class Meta:
        ordering = ("-created_at",)
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.name})"

    @property
    def state(self) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= timezone.now():
            return "expired"
        if not self.user.is_active:
            return "user disabled"
        return "active"


class AuditEvent(models.Model):
    """Who did what in the console, the API or the command line, and when."""

    at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    actor_name = models.CharField(max_length=150, help_text="Kept when the account is gone.")
    action = models.CharField(max_length=50, db_index=True)
    target_type = models.CharField(max_length=50, blank=True)
    target_id = models.CharField(max_length=50, blank=True)
    target = models.CharField(max_length=300, blank=True)
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ("-at",)
        indexes = (models.Index(fields=("target_type", "target_id")),)

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor_name} {self.action} {self.target}"
