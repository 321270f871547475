"""Full-text search of the journal (PostgreSQL only; see journal/search.py)."""

from typing import Any

from django.db import migrations

from journal.search import create_search_sql, drop_search_sql


def create_search(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "postgresql":
        for statement in create_search_sql():
            schema_editor.execute(statement)


def drop_search(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "postgresql":
        for statement in drop_search_sql():
            schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [("journal", "0001_initial")]
    operations = [migrations.RunPython(create_search, drop_search)]
