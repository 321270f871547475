from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class JournalConfig(AppConfig):
    """One row per API request, Tabby events, the console pages that read them."""

    name = "journal"
    verbose_name = "Journal"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # checks, redact_checks: register the system checks.  live: connects the signals
        # that close the live view's sockets on logout or a loss of rights, in every
        # process (a password changed from a shell counts too).
        from journal import checks, live, redact_checks  # noqa: F401

        post_migrate.connect(grant_journal_roles, sender=self)


def grant_journal_roles(*, using: str, apps: Any = None, **kwargs: Any) -> None:
    """Auditors and administrators read the journal; nobody edits it.

    A signal rather than a data migration: the journal may live in a database of its
    own, while groups and permissions always live in the main one.
    """
    from accounts.roles import ADMINISTRATORS, AUDITORS, grant

    if using != "default":
        return
    readable: dict[str, tuple[str, ...]] = {"entry": ("view",), "event": ("view",)}
    if apps is None:
        # `flush` (between tests) sends the signal without a migration state; the
        # permissions exist by now (auth's own handler ran first).
        from django.apps import apps as installed

        _grant_installed(installed, (AUDITORS, ADMINISTRATORS), readable)
        return
    grant(apps, AUDITORS, "journal", readable)
    grant(apps, ADMINISTRATORS, "journal", readable)


def _grant_installed(
    apps: Any, groups: tuple[str, ...], models: dict[str, tuple[str, ...]]
) -> None:
    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
    codenames = [f"{action}_{model}" for model, actions in models.items() for action in actions]
    permissions = list(
        permission_model.objects.filter(content_type__app_label="journal", codename__in=codenames)
    )
    for name in groups:
        group, _ = group_model.objects.get_or_create(name=name)
        group.permissions.add(*permissions)
