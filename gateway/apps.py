from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class GatewayConfig(AppConfig):
    """The public API: upstreams, routing, the streaming proxy, health."""

    name = "gateway"
    verbose_name = "Gateway"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from gateway import checks, selectors, services, signals  # noqa: F401 - registers
        from gateway.following import DatabaseAccess, use_database

        post_migrate.connect(grant_gateway_roles, sender=self)
        # The workers' upstream tables follow the database through these, so that the
        # routing table itself imports no ORM module.
        use_database(
            DatabaseAccess(
                load_snapshot=selectors.snapshot_or_none,
                check_and_store=services.check_and_store_upstreams,
            )
        )


# Administrators manage the upstreams, models and settings, the action templates, and the
# schedules (the health checks' among them); auditors only read the action templates and
# defaults, and their versions (django-simple-history's pages follow these permissions).
ADMIN_GRANTS: dict[str, dict[str, tuple[str, ...]]] = {
    "gateway": {
        "upstreamserver": ("add", "change", "delete", "view"),
        "servedmodel": ("change", "delete", "view"),
        "gatewaysetting": ("change", "view"),
        "actiontemplate": ("add", "change", "delete", "view"),
        "actionsetting": ("add", "change", "delete", "view"),
    },
    "django_celery_beat": {
        model: ("add", "change", "delete", "view")
        for model in (
            "periodictask",
            "intervalschedule",
            "crontabschedule",
            "solarschedule",
            "clockedschedule",
        )
    },
}


AUDITOR_GRANTS: dict[str, dict[str, tuple[str, ...]]] = {
    "gateway": {"actiontemplate": ("view",), "actionsetting": ("view",)},
}


def grant_gateway_roles(*, using: str, apps: Any = None, **kwargs: Any) -> None:
    """After every migrate, and after ``flush`` (tests), which empties the groups.

    A signal rather than only a data migration: the grants then also reach databases
    migrated before these models existed, and django-celery-beat's permissions.
    """
    from accounts.roles import ADMINISTRATORS, AUDITORS, grant

    if using != "default":
        return
    roles = ((ADMINISTRATORS, ADMIN_GRANTS), (AUDITORS, AUDITOR_GRANTS))
    if apps is None:
        from django.apps import apps as installed

        for group_name, grants in roles:
            _grant_installed(installed, group_name, grants)
        return
    for group_name, grants in roles:
        for app_label, models in grants.items():
            grant(apps, group_name, app_label, models)


def _grant_installed(
    apps: Any, group_name: str, grants: dict[str, dict[str, tuple[str, ...]]]
) -> None:
    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
    group, _ = group_model.objects.get_or_create(name=group_name)
    for app_label, models in grants.items():
        codenames = [f"{action}_{model}" for model, actions in models.items() for action in actions]
        group.permissions.add(
            *permission_model.objects.filter(
                content_type__app_label=app_label, codename__in=codenames
            )
        )
