"""The console's pages for API users, their tokens and the audit trail.

Every write goes through :mod:`accounts.services`, so each one leaves an audit event; the
admin's own saving is overridden for that.  Tokens are only issued through the issue-token
page (the plain token is shown once, in the answer to its POST, and never stored, put in a
URL or a message).  Nothing is deleted, as in the management API: users are disabled and
tokens revoked, so the journal and the audit trail keep naming them.
"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q, QuerySet
from django.forms import ModelForm
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html
from unfold.admin import ModelAdmin

from accounts import services
from accounts.admin_console_users import register as register_console_accounts
from accounts.admin_lists import (
    ApiTokenInline,
    AuditActorFilter,
    TokenStateFilter,
    last_used_shown,
    limit_shown,
)
from accounts.admin_tokens import issue_and_show, may_issue, new_nonce, take_nonce
from accounts.admin_widgets import themed
from accounts.forms import ApiTokenForm, ApiUserForm, IssueTokenForm
from accounts.models import ApiToken, ApiUser, AuditEvent


class ConsoleModelAdmin(ModelAdmin):
    """A POST to a change list (actions, list_editable) is a write: 403 without *change*.

    Django would quietly ignore an action that the user may not run and answer 200;
    a clear refusal is what auditors must get on every write path.

    Every console page derives from django-unfold's model admin (the console's theme):
    its widgets and templates.
    """

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if request.method == "POST" and not self.has_change_permission(request):
            raise PermissionDenied
        return super().changelist_view(request, extra_context)

    def render_change_form(
        self, request: HttpRequest, context: dict[str, Any], *args: Any, **kwargs: Any
    ) -> HttpResponse:
        # After the form's own __init__, which may replace a field (and its widget).
        themed(context["adminform"].form)
        return super().render_change_form(request, context, *args, **kwargs)


def _adopt(obj: ApiUser, saved: ApiUser) -> None:
    """Make the admin's unsaved instance the row the services saved (pk, timestamps)."""
    for field in ApiUser._meta.concrete_fields:
        setattr(obj, field.attname, getattr(saved, field.attname))
    obj._state.adding = False
    obj._state.db = saved._state.db


@admin.register(ApiUser)
class ApiUserAdmin(ConsoleModelAdmin):
    form = ApiUserForm
    list_display = (
        "username",
        "full_name",
        "is_active",
        "tokens",
        "rate_limit",
        "concurrency_limit",
        "models",
    )
    list_filter = ("is_active",)
    search_fields = ("username", "full_name", "email")
    readonly_fields = ("created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("username", "full_name", "email", "comment", "is_active")}),
        ("Limits", {"fields": ("requests_per_minute", "max_concurrent", "allowed_models")}),
        ("Record", {"fields": ("created_at", "updated_at")}),
    )
    inlines = (ApiTokenInline,)
    actions = ("disable_users", "enable_users")

    def get_queryset(self, request: HttpRequest) -> QuerySet[ApiUser]:
        now = timezone.now()
        usable = Q(tokens__revoked_at__isnull=True) & (
            Q(tokens__expires_at__isnull=True) | Q(tokens__expires_at__gt=now)
        )
        return (
            super()
            .get_queryset(request)
            .annotate(
                token_count=Count("tokens", distinct=True),
                usable_token_count=Count("tokens", filter=usable, distinct=True),
            )
        )

    @admin.display(description="tokens", ordering="usable_token_count")
    def tokens(self, user: Any) -> str:
        return f"{user.usable_token_count} active / {user.token_count}"

    @admin.display(description="requests/min", ordering="requests_per_minute")
    def rate_limit(self, user: ApiUser) -> str:
        return limit_shown(user.requests_per_minute, settings.KODIFY_RATE_LIMIT_PER_MINUTE)

    @admin.display(description="in flight", ordering="max_concurrent")
    def concurrency_limit(self, user: ApiUser) -> str:
        return limit_shown(user.max_concurrent, settings.KODIFY_MAX_CONCURRENT)

    @admin.display(description="models")
    def models(self, user: ApiUser) -> str:
        return ", ".join(user.allowed_models) if user.allowed_models else "all"

    # -- writes, all through accounts.services ---------------------------------------

    def save_model(self, request: HttpRequest, obj: ApiUser, form: ModelForm, change: bool) -> None:
        data = form.cleaned_data
        if change:
            current = ApiUser.objects.get(pk=obj.pk)
            changed = {name: data[name] for name in form.changed_data if name in data}
            active = changed.pop("is_active", None)
            saved = services.update_user(user=current, actor=request.user, **changed)
            if active is not None:  # its own event: "user.disabled" is what people look for
                saved = services.set_user_active(user=saved, active=active, actor=request.user)
        else:
            fields = {name: data[name] for name in ApiUserForm.Meta.fields if name in data}
            saved = services.create_user(
                username=fields.pop("username"), actor=request.user, **fields
            )
        _adopt(obj, saved)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Disabled, never deleted (as in the management API): the journal and the audit
        # trail keep naming who made each request.
        return False

    @admin.action(description="Disable selected API users", permissions=["change"])
    def disable_users(self, request: HttpRequest, queryset: QuerySet[ApiUser]) -> None:
        self._set_active(request, queryset, active=False)

    @admin.action(description="Enable selected API users", permissions=["change"])
    def enable_users(self, request: HttpRequest, queryset: QuerySet[ApiUser]) -> None:
        self._set_active(request, queryset, active=True)

    def _set_active(self, request: HttpRequest, queryset: QuerySet[ApiUser], active: bool) -> None:
        changed = []
        for user in queryset:
            if user.is_active != active:
                services.set_user_active(user=user, active=active, actor=request.user)
                changed.append(user.username)
        verb = "Enabled" if active else "Disabled"
        if changed:
            messages.success(request, f"{verb} {len(changed)} API user(s): {', '.join(changed)}.")
        else:
            messages.info(
                request, f"Nothing to do: the selected users were already {verb.lower()}."
            )

    # -- the issue-token page ----------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        issue = path(
            "<path:object_id>/issue-token/",
            self.admin_site.admin_view(self.issue_token_view),
            name="accounts_apiuser_issue_token",
        )
        return [issue, *super().get_urls()]

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        extra = {**(extra_context or {}), "can_issue_token": may_issue(request)}
        return super().change_view(request, object_id, form_url, extra)

    def issue_token_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        if not may_issue(request):
            raise PermissionDenied
        user = self.get_object(request, unquote(object_id))
        if user is None:
            raise Http404(f"No {self.opts.verbose_name} with id {object_id!r}.")
        user_url = reverse("admin:accounts_apiuser_change", args=[user.pk])
        if request.method == "POST":
            form = IssueTokenForm(request.POST)
            if form.is_valid():
                if not take_nonce(request, form.cleaned_data["nonce"]):
                    messages.warning(
                        request,
                        "That form was already sent and its token shown once. If the token "
                        "was lost, revoke it and issue a new one.",
                    )
                    return HttpResponseRedirect(user_url)
                return issue_and_show(self, request, user, form.cleaned_data)
        else:
            form = IssueTokenForm(initial={"nonce": new_nonce(request)})
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Issue a token for {user}",
            "original": user,
            "user_url": user_url,
            "form": form,
        }
        return TemplateResponse(request, "admin/accounts/apiuser/issue_token.html", context)


@admin.register(ApiToken)
class ApiTokenAdmin(ConsoleModelAdmin):
    form = ApiTokenForm
    list_display = (
        "prefix",
        "user",
        "name",
        "created_at",
        "created_by",
        "expires_at",
        "last_used",
        "state",
    )
    list_filter = (TokenStateFilter, ("user", admin.RelatedOnlyFieldListFilter))
    list_select_related = ("user", "created_by")
    search_fields = ("prefix", "name", "user__username")
    fieldsets = (
        (None, {"fields": ("prefix", "user", "name", "comment", "state")}),
        (
            "Lifetime",
            {"fields": ("created_at", "created_by", "expires_at", "revoked_at", "revoked_by")},
        ),
        ("Last use", {"fields": ("last_used_at", "last_used_user_agent")}),
    )
    actions = ("revoke_tokens",)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        fixed = (
            "prefix",
            "user",
            "name",
            "comment",
            "state",
            "created_at",
            "created_by",
            "revoked_at",
            "revoked_by",
            "last_used_at",
            "last_used_user_agent",
        )
        # A revoked token stays revoked: its expiry no longer means anything.
        return (*fixed, "expires_at") if obj is not None and obj.revoked_at else fixed

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # only the issue-token page creates tokens (and shows them once)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # revoked, never deleted: the audit trail refers to them

    @admin.display(description="last used", ordering="last_used_at")
    def last_used(self, token: ApiToken) -> str:
        return last_used_shown(token)

    @admin.display(description="state")
    def state(self, token: ApiToken) -> str:
        return token.state

    def save_model(
        self, request: HttpRequest, obj: ApiToken, form: ModelForm, change: bool
    ) -> None:
        if "expires_at" in form.changed_data:
            current = ApiToken.objects.get(pk=obj.pk)
            services.set_token_expiry(
                token=current, expires_at=form.cleaned_data["expires_at"], actor=request.user
            )

    @admin.action(description="Revoke selected tokens", permissions=["change"])
    def revoke_tokens(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        revoked = [
            services.revoke_token(token=token, actor=request.user).prefix
            for token in queryset.select_related("user").filter(revoked_at__isnull=True)
        ]
        if revoked:
            messages.success(request, f"Revoked {len(revoked)} token(s): {', '.join(revoked)}.")
        else:
            messages.info(request, "Nothing to do: the selected tokens were already revoked.")

    # -- the revoke page ---------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        revoke = path(
            "<path:object_id>/revoke/",
            self.admin_site.admin_view(self.revoke_view),
            name="accounts_apitoken_revoke",
        )
        return [revoke, *super().get_urls()]

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        extra = {**(extra_context or {}), "can_revoke": self.has_change_permission(request)}
        return super().change_view(request, object_id, form_url, extra)

    def revoke_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        if not self.has_change_permission(request):
            raise PermissionDenied
        token = self.get_object(request, unquote(object_id))
        if token is None:
            raise Http404(f"No {self.opts.verbose_name} with id {object_id!r}.")
        token_url = reverse("admin:accounts_apitoken_change", args=[token.pk])
        if request.method == "POST":
            if token.revoked_at is None:
                services.revoke_token(token=token, actor=request.user)
                messages.success(request, f"Token {token.prefix}… of {token.user} revoked.")
            else:
                messages.info(request, f"Token {token.prefix}… was already revoked.")
            return redirect(token_url)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Revoke this token?",
            "original": token,
            "token_url": token_url,
        }
        return TemplateResponse(
            request, "admin/accounts/apitoken/revoke_confirmation.html", context
        )


@admin.register(AuditEvent)
class AuditEventAdmin(ConsoleModelAdmin):
    """The audit trail: read-only for everyone, superusers included."""

    list_display = ("at", "actor_name", "action", "target", "summary")
    list_filter = ("action", AuditActorFilter)
    search_fields = ("target",)
    date_hierarchy = "at"
    fields = (
        "at",
        "actor",
        "actor_name",
        "action",
        "target_type",
        "target_id",
        "target",
        "pretty_details",
    )
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="details")
    def summary(self, event: AuditEvent) -> str:
        text = json.dumps(event.details, ensure_ascii=False, sort_keys=True)
        return "" if text == "{}" else text if len(text) <= 100 else text[:99] + "…"

    @admin.display(description="details")
    def pretty_details(self, event: AuditEvent) -> str:
        text = json.dumps(event.details, ensure_ascii=False, indent=2, sort_keys=True)
        return format_html("<pre>{}</pre>", text)


# Console accounts: created and changed with a role (accounts/admin_console_users.py).
register_console_accounts(admin.site)
