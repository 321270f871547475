"""The console's lists of API users, tokens and audit events: their filters, the tokens
shown on a user's page, and how a token's use and a user's limits read."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.formats import localize
from django.utils.html import format_html
from unfold.admin import TabularInline

from accounts.models import ApiToken, AuditEvent


def last_used_shown(token: ApiToken) -> str:
    if token.last_used_at is None:
        return "never"
    when = localize(timezone.localtime(token.last_used_at))
    agent = token.last_used_user_agent
    if not agent:
        return format_html("{}", when)
    shown = agent if len(agent) <= 60 else agent[:59] + "…"
    return format_html('{}<br><small title="{}">{}</small>', when, agent, shown)


class TokenStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [
            ("active", "active"),
            ("expired", "expired"),
            ("revoked", "revoked"),
            ("user disabled", "user disabled"),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        # The same order of precedence as ApiToken.state: revoked, expired, user disabled.
        now = timezone.now()
        live = Q(revoked_at__isnull=True)
        unexpired = Q(expires_at__isnull=True) | Q(expires_at__gt=now)
        match self.value():
            case "active":
                return queryset.filter(live & unexpired, user__is_active=True)
            case "expired":
                return queryset.filter(live, expires_at__lte=now)
            case "revoked":
                return queryset.filter(revoked_at__isnull=False)
            case "user disabled":
                return queryset.filter(live & unexpired, user__is_active=False)
        return queryset


class ApiTokenInline(TabularInline):
    """A user's tokens on the user's page: read-only, digests never shown."""

    model = ApiToken
    fields = ("prefix", "name", "created_at", "expires_at", "last_used", "state")
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = True  # revoking and the expiry are on the token's own page
    ordering = ("-created_at",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[ApiToken]:
        return super().get_queryset(request).select_related("user")  # state reads the user

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="last used")
    def last_used(self, token: ApiToken) -> str:
        return last_used_shown(token)

    @admin.display(description="state")
    def state(self, token: ApiToken) -> str:
        return token.state


def limit_shown(value: int | None, default: int) -> str:
    if value is None:
        return f"default ({default or 'no limit'})"
    return str(value or "no limit")


class AuditActorFilter(admin.SimpleListFilter):
    """By name: the command line and the admin API key act without a console account."""

    title = "actor"
    parameter_name = "actor"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        names = (
            AuditEvent.objects.order_by("actor_name")
            .values_list("actor_name", flat=True)
            .distinct()
        )
        return [(name, name) for name in names]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        return queryset.filter(actor_name=value) if value else queryset
