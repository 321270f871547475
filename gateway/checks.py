"""System checks for config.yml and the upstream list."""

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.checks import Error, Warning, register
from django.db import DatabaseError

from gateway.config_file import ConfigError


@register()
def upstream_configuration(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    from gateway.config_file import gateway_config

    try:
        config = gateway_config()
    except ConfigError as exc:
        return [Error(str(exc), id="kodify.E101")]
    from gateway.fim.profiles import ProfileError, get_profiles

    try:
        get_profiles()
    except ProfileError as exc:
        return [Error(f"Autocompletion config: {exc}", id="kodify.E102")]
    if not config.upstreams and not console_upstream_enabled():
        return [
            Warning(
                "No upstream in config.yml or KODIFY_UPSTREAMS: requests will get 503 "
                "until one is named there or added in the console (Upstreams).",
                id="kodify.W101",
            )
        ]
    return []


def console_upstream_enabled() -> bool:
    """Whether the database has an enabled upstream added in the console: then Kodify
    has an upstream, and "no upstream" would be printed by every command for nothing.

    A database that cannot say (not migrated, not reachable) counts as having none, so
    the warning stays as it was.  An SQLite file that does not exist yet is not opened:
    connecting would create it, empty, before ``migrate`` does.
    """
    from gateway.models import SOURCE_CONSOLE, UpstreamServer

    database = settings.DATABASES["default"]
    if database["ENGINE"].endswith("sqlite3"):
        name = str(database["NAME"])
        if name != ":memory:" and not name.startswith("file:") and not Path(name).exists():
            return False
    try:
        return UpstreamServer.objects.filter(source=SOURCE_CONSOLE, enabled=True).exists()
    except DatabaseError:
        return False
