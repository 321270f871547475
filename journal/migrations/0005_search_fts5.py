"""Full-text search on SQLite: an FTS5 index of the rows' prompts and answers, kept in
step by triggers, with the rows already there indexed (journal/search.py).  PostgreSQL
has its own since 0002; other databases keep the substring search."""

from typing import Any

from django.db import migrations

from journal.search import create_fts5_sql, drop_fts5_sql


def create_search_fts5(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "sqlite":
        for statement in create_fts5_sql():
            schema_editor.execute(statement)


def drop_search_fts5(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "sqlite":
        for statement in drop_fts5_sql():
            schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [("journal", "0004_entry_client_request_id")]
    operations = [migrations.RunPython(create_search_fts5, drop_search_fts5)]
