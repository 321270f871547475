"""The console's two roles, as Django groups with permissions.

*Administrators* manage everything; *auditors* only read the journal and dashboards.
Each app's data migration grants its own models' permissions through :func:`grant`, so a
role keeps up as apps are added (the journal grants auditors its view permissions).
"""

from __future__ import annotations

from typing import Any

ADMINISTRATORS = "Administrators"
AUDITORS = "Auditors"

# What administrators may do in the accounts and operations apps (codename prefixes).
ADMIN_GRANTS: dict[str, dict[str, tuple[str, ...]]] = {
    "accounts": {
        "apiuser": ("add", "change", "delete", "view"),
        "apitoken": ("add", "change", "delete", "view"),
        "auditevent": ("view",),
    },
    "auth": {"user": ("add", "change", "delete", "view"), "group": ("view",)},
}


def ensure_permissions(apps: Any, app_label: str) -> None:
    """Create an app's permissions now; Django would only do it after the whole migrate."""
    from django.contrib.auth.management import create_permissions

    config = apps.get_app_config(app_label)
    config.models_module = True
    create_permissions(config, apps=apps, verbosity=0)
    config.models_module = None


def grant(apps: Any, group_name: str, app_label: str, models: dict[str, tuple[str, ...]]) -> None:
    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
    ensure_permissions(apps, app_label)
    group, _ = group_model.objects.get_or_create(name=group_name)
    codenames = [f"{action}_{model}" for model, actions in models.items() for action in actions]
    permissions = permission_model.objects.filter(
        content_type__app_label=app_label, codename__in=codenames
    )
    group.permissions.add(*permissions)


# Auditors may look up who a journal row's user is, never change anything.
AUDITOR_GRANTS: dict[str, dict[str, tuple[str, ...]]] = {
    "accounts": {"apiuser": ("view",), "apitoken": ("view",), "auditevent": ("view",)},
}


def create_roles(apps: Any, schema_editor: Any) -> None:
    for app_label, models in ADMIN_GRANTS.items():
        grant(apps, ADMINISTRATORS, app_label, models)
    for app_label, models in AUDITOR_GRANTS.items():
        grant(apps, AUDITORS, app_label, models)
