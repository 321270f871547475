"""Console accounts in the console: a role to pick, not staff flags and groups to set.

Django's own page for users asks an administrator to tick "staff status" and add the
right group, and a forgotten flag shows up only as a refused login.  Here an account is
created with a name, a password and its role (administrator or auditor); the role brings
the staff status and the group (:func:`accounts.services.set_console_role`).  The raw
permissions stay reachable, folded, for the rare case that needs them.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.models import User
from django.http import HttpRequest
from unfold.admin import ModelAdmin
from unfold.forms import AdminPasswordChangeForm, UserChangeForm, UserCreationForm
from unfold.widgets import UnfoldAdminSelectWidget

from accounts import services

ROLE_CHOICES = [
    ("administrator", "Administrator: manages API users, tokens, model servers and settings"),
    ("auditor", "Auditor: reads the journal, its dashboards and the audit trail"),
]


def _role_field(*, required: bool) -> forms.ChoiceField:
    choices = ROLE_CHOICES if required else [("", "No role (the console refuses the login)")]
    if not required:
        choices = [*choices, *ROLE_CHOICES]
    return forms.ChoiceField(
        choices=choices,
        required=required,
        widget=UnfoldAdminSelectWidget,
        help_text="What the account may do in the console. Staff status comes with it.",
    )


class ConsoleAccountCreationForm(UserCreationForm):
    role = _role_field(required=True)


class ConsoleAccountChangeForm(UserChangeForm):
    role = _role_field(required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk and "role" in self.fields:
            self.fields["role"].initial = services.role_choice(self.instance)


class ConsoleAccountAdmin(UserAdmin, ModelAdmin):
    form = ConsoleAccountChangeForm
    add_form = ConsoleAccountCreationForm
    change_password_form = AdminPasswordChangeForm
    list_display = ("username", "role", "is_active", "last_login")
    list_filter = ("is_active", "groups")
    add_fieldsets = (
        (None, {"classes": ("wide",), "fields": ("username", "role", "password1", "password2")}),
    )
    fieldsets = (
        (None, {"fields": ("username", "password")}),
        ("Role", {"fields": ("role", "is_active")}),
        ("Person", {"fields": ("first_name", "last_name", "email")}),
        (
            "Advanced permissions",
            {
                "classes": ("collapse",),
                "description": "Rarely needed: the role sets what the account may do.",
                "fields": ("is_staff", "is_superuser", "groups", "user_permissions"),
            },
        ),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )

    @admin.display(description="role")
    def role(self, user: User) -> str:
        return services.console_role(user)

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if not change:
            obj.is_staff = True
        super().save_model(request, obj, form, change)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        # After the form's own groups (an advanced edit), so the role picked wins.
        super().save_related(request, form, formsets, change)
        role = form.cleaned_data.get("role")
        if not change:
            services.audit(
                actor=request.user,
                action="console_user.create",
                target=form.instance,
                details={"role": role},
            )
        if role:
            services.set_console_role(user=form.instance, role=role, actor=request.user)


def register(site: admin.AdminSite) -> None:
    if site.is_registered(User):
        site.unregister(User)
    site.register(User, ConsoleAccountAdmin)
