"""``manage.py kodify_migrate``: migrate every configured database, once, under a lock.

Replicas that start together all call this; the lock (a PostgreSQL advisory lock, or a
file lock beside a SQLite file) lets the first one migrate while the others wait and then
find nothing left to do.  A PostgreSQL database that does not exist yet is created when
the role may create databases.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import OperationalError, connections
from filelock import FileLock

# An arbitrary constant shared by every Kodify process ("kodify" in ASCII).
ADVISORY_LOCK_KEY = 0x6B6F64696679
LOCK_TIMEOUT = 600


class Command(BaseCommand):
    help = "Create and migrate every configured database (main, journal) under a lock."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--database",
            choices=list(settings.DATABASES),
            help="Only this database (default: every configured one).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        verbosity = options["verbosity"]
        aliases = [options["database"]] if options.get("database") else list(settings.DATABASES)
        for alias in aliases:
            connection = connections[alias]
            if connection.vendor == "postgresql":
                create_database_if_missing(alias)
            with migration_lock(alias):
                if verbosity:
                    self.stdout.write(f"Migrating database '{alias}'…")
                # Into the streams this command was given: the Celery task returns what
                # it captured.  (The raw streams: wrapping self.stdout again would end
                # migrate's "Applying …" and its " OK" on separate lines.)
                call_command(
                    "migrate",
                    database=alias,
                    interactive=False,
                    verbosity=verbosity,
                    stdout=options.get("stdout"),
                    stderr=options.get("stderr"),
                )


def _connect(connection: Any) -> None:
    """Connect once; a pooled database is tried directly, since the pool would only
    retry until its timeout and then hide why it could not connect."""
    if connection.vendor == "postgresql" and connection.settings_dict["OPTIONS"].get("pool"):
        import psycopg

        try:
            psycopg.connect(**connection.get_connection_params()).close()
        except psycopg.OperationalError as exc:
            raise OperationalError(str(exc)) from exc
    connection.ensure_connection()


def create_database_if_missing(alias: str) -> None:
    connection = connections[alias]
    try:
        _connect(connection)
        return
    except OperationalError as exc:
        # 3D000 invalid_catalog_name; libpq may not report it at connect time, hence the text.
        missing = getattr(exc.__cause__, "sqlstate", None) == "3D000"
        if not missing and "does not exist" not in str(exc):
            raise CommandError(f"Cannot connect to database '{alias}': {exc}".strip()) from exc
    name = connection.settings_dict["NAME"]
    try:
        with connection._nodb_cursor() as cursor:
            cursor.execute(f"CREATE DATABASE {connection.ops.quote_name(name)}")
        connection.ensure_connection()
    except Exception as exc:
        # Replicas starting together race to create it: the losers find it there now.
        with contextlib.suppress(OperationalError):
            _connect(connection)
            return
        raise CommandError(
            f"Database {name!r} does not exist and could not be created ({exc}). "
            "Create it, or give the role the CREATEDB privilege."
        ) from exc


@contextlib.contextmanager
def migration_lock(alias: str) -> Iterator[None]:
    connection = connections[alias]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s)", [ADVISORY_LOCK_KEY])
        try:
            yield
        finally:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [ADVISORY_LOCK_KEY])
    elif connection.vendor == "sqlite":
        path = Path(connection.settings_dict["NAME"])
        if str(path) == ":memory:" or "mode=memory" in str(path):
            yield
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(path) + ".migrate.lock", timeout=LOCK_TIMEOUT):
            yield
    else:
        yield
