"""The console's navigation, grouped by task: the side bar on every page, and the home.

django-unfold draws the side bar from ``UNFOLD["SIDEBAR"]["navigation"]``, which names
:func:`sidebar`; it is built for each request, so that a model admin that is not there
(an app's admin still to come) is left out instead of breaking every page, and each entry
carries the check that decides whether this user sees it: the model admin's own (the one
the admin's app list uses), so that the side bar, the home and the pages agree.

The plumbing apps (sessions, content types, Celery's schedules) have no entry of their
own: the periodic tasks lead to their schedules.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from functools import partial
from typing import Any

from django.apps import apps
from django.contrib import admin
from django.contrib.admin import ModelAdmin
from django.http import HttpRequest
from django.templatetags.static import static
from django.urls import NoReverseMatch, reverse

Item = dict[str, Any]
Group = dict[str, Any]

# (app label, model name, title, icon): Material Symbols names, as unfold draws them.
PEOPLE = (
    ("accounts", "apiuser", "API users", "group"),
    ("accounts", "apitoken", "Tokens", "key"),
    ("auth", "user", "Console accounts", "manage_accounts"),
)
GATEWAY = (
    ("gateway", "upstreamserver", "Upstreams", "dns"),
    ("gateway", "servedmodel", "Models", "neurology"),
    ("gateway", "gatewaysetting", "Gateway settings", "tune"),
    ("gateway", "actiontemplate", "Action templates", "description"),
    ("gateway", "actionsetting", "Action settings", "build"),
)
SYSTEM = (
    ("accounts", "auditevent", "Audit trail", "history"),
    ("axes", "accessattempt", "Login attempts", "lock_clock"),
    ("axes", "accessfailurelog", "Login failures", "block"),
    ("axes", "accesslog", "Console logins", "login"),
    ("django_celery_beat", "periodictask", "Periodic tasks", "schedule"),
    ("auth", "group", "Roles (groups)", "badge"),
)


def site_icon(request: HttpRequest) -> str:
    """The side bar's logo: Kodify's icon, the browsers' one too."""
    return static("kodify/favicon.svg")


def _model_admin(app_label: str, model_name: str) -> ModelAdmin[Any] | None:
    try:
        model = apps.get_model(app_label, model_name)
    except LookupError:  # the app is not installed, or the model not there yet
        return None
    return admin.site._registry.get(model)


def _may_open(app_label: str, model_name: str, request: HttpRequest) -> bool:
    model_admin = _model_admin(app_label, model_name)
    return model_admin is not None and bool(
        model_admin.has_module_permission(request)
        and model_admin.has_view_or_change_permission(request)
    )


def _model_item(request: HttpRequest, entry: tuple[str, str, str, str]) -> Item | None:
    app_label, model_name, title, icon = entry
    model_admin = _model_admin(app_label, model_name)
    if model_admin is None:
        return None
    try:
        link = reverse(f"admin:{app_label}_{model_name}_changelist")
    except NoReverseMatch:
        return None
    item: Item = {
        "title": title,
        "icon": icon,
        "link": link,
        # By name: unfold deep-copies the groups, and a model admin does not copy.
        "permission": partial(_may_open, app_label, model_name),
        "key": f"{app_label}.{model_name}",
    }
    # The home offers "Add" beside what this user may add (unfold ignores the key).
    if model_admin.has_add_permission(request):
        with contextlib.suppress(NoReverseMatch):
            item["add_link"] = reverse(f"admin:{app_label}_{model_name}_add")
            item["add_title"] = f"Add {model_admin.opts.verbose_name}"
    return item


def _models(request: HttpRequest, entries: tuple[tuple[str, str, str, str], ...]) -> list[Item]:
    return [item for entry in entries if (item := _model_item(request, entry)) is not None]


def _has_perm(permission: str, request: HttpRequest) -> bool:
    return bool(request.user.has_perm(permission))


def _is_staff(request: HttpRequest) -> bool:
    return bool(request.user.is_active and request.user.is_staff)


def _on_page(*url_names: str) -> Callable[[HttpRequest], bool]:
    """Whether this request is one of these pages (unfold's own test is a path prefix,
    and every journal page's path starts with the list's)."""

    def active(request: HttpRequest) -> bool:
        match = request.resolver_match
        return match is not None and match.view_name in url_names

    return active


def _journal(request: HttpRequest) -> list[Item]:
    may_read = partial(_has_perm, "journal.view_entry")
    return [
        {
            "title": "Requests",
            "icon": "receipt_long",
            "link": reverse("journal:list"),
            "permission": may_read,
            "active": _on_page("journal:list", "journal:detail"),
            "key": "journal.list",
        },
        {
            "title": "Dashboard",
            "icon": "monitoring",
            "link": reverse("journal:dashboard"),
            "permission": may_read,
            "key": "journal.dashboard",
        },
        {
            "title": "Live",
            "icon": "sensors",
            "link": reverse("journal:live"),
            "permission": may_read,
            "key": "journal.live",
        },
    ]


def home_groups(groups: list[Group]) -> list[Group]:
    """The home's groups: the side bar's as unfold resolved them for this request (each
    entry's ``has_permission``), with only what this user may open, and the titled ones
    (the home is the untitled group's first entry)."""
    shown = []
    for group in groups:
        items = [item for item in group["items"] if item.get("has_permission")]
        if group.get("title") and items:
            shown.append({**group, "items": items})
    return shown


def sidebar(request: HttpRequest) -> list[Group]:
    """The groups, in the order an administrator works: who may call, what serves them,
    what happened, and the console's own machinery."""
    return [
        {
            "title": "",
            "key": "start",
            "items": [
                {
                    "title": "Overview",
                    "icon": "home",
                    "link": reverse("admin:index"),
                    "permission": _is_staff,
                    "key": "overview",
                },
                {
                    "title": "Connect your IDE",
                    "icon": "cable",
                    "link": reverse("admin:connect"),
                    "permission": _is_staff,
                    "key": "connect",
                },
            ],
        },
        {"title": "People", "key": "people", "items": _models(request, PEOPLE)},
        {"title": "Gateway", "key": "gateway", "items": _models(request, GATEWAY)},
        {"title": "Journal", "key": "journal", "items": _journal(request)},
        {"title": "System", "key": "system", "items": _models(request, SYSTEM)},
    ]
