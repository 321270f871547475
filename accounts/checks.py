"""System checks for the per-user mode's settings (USERS_TABLE)."""

from typing import Any

from django.core.checks import Error, register
from django.db import connections

from accounts.models import users_table_parts


@register()
def users_table_name(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    try:
        schema, _ = users_table_parts()
    except ValueError as exc:
        return [Error(str(exc), id="kodify.E020")]
    if schema and connections["default"].vendor != "postgresql":
        return [
            Error(
                "USERS_TABLE names a schema, which only PostgreSQL has: set DB_URL to a "
                "PostgreSQL database, or drop the schema part.",
                id="kodify.E021",
            )
        ]
    return []


def users_table_missing() -> str | None:
    """A sentence when the API users' table is not where USERS_TABLE says, else None.

    Migrations create the table under the name USERS_TABLE had then; if the variable
    changed since, Kodify would fail on the first token lookup, so the start is refused.
    """
    from django.db.migrations.recorder import MigrationRecorder

    connection = connections["default"]
    if (
        not MigrationRecorder(connection)
        .migration_qs.filter(app="accounts", name="0001_initial")
        .exists()
    ):
        return None
    schema, table = users_table_parts()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT 1 FROM information_schema.tables "
                "WHERE table_schema = COALESCE(%s, current_schema()) AND table_name = %s",
                [schema, table],
            )
            found = cursor.fetchone() is not None
        else:
            found = table in connection.introspection.table_names(cursor)
    if found:
        return None
    name = f"{schema}.{table}" if schema else table
    return (
        f"USERS_TABLE names the table {name}, which does not exist, but the API users were "
        "created earlier under another name: set USERS_TABLE back, or rename that table."
    )
