"""``manage.py kodify_migrate`` in real processes.

It creates a missing PostgreSQL database, migrates it once when replicas start together,
and waits on its lock (a PostgreSQL advisory lock, or a file lock beside a SQLite file)
while another process holds it.  The Celery task runs the same command.
"""

from __future__ import annotations

import contextlib
import queue
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
from celery.result import EagerResult
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.db.migrations.loader import MigrationLoader
from filelock import FileLock
from psycopg import sql

from kodify_site.management.commands.kodify_migrate import ADVISORY_LOCK_KEY
from kodify_site.tasks import run_migrations
from kodify_site.testing import REPO, server_environment

COMMAND_TIMEOUT = 90.0
MIGRATING = "Migrating database 'default'"

# The command with filelock's debug log on stdout, so that a test can see it waiting.
_MIGRATE_WITH_FILELOCK_LOG = """\
import logging, sys
handler = logging.StreamHandler(sys.stdout)
logging.getLogger("filelock").addHandler(handler)
logging.getLogger("filelock").setLevel(logging.DEBUG)
from django.core.management import execute_from_command_line
execute_from_command_line(["manage.py", "kodify_migrate"])
"""


@dataclass
class MigrateRun:
    """One ``kodify_migrate`` process whose output is read while it runs."""

    process: subprocess.Popen[str]
    output: list[str] = field(default_factory=list)
    _lines: queue.Queue[str | None] = field(default_factory=queue.Queue)
    _pump: threading.Thread | None = None

    def __post_init__(self) -> None:
        self._pump = threading.Thread(target=self._read, daemon=True)
        self._pump.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)
            self._lines.put(line)
        self._lines.put(None)

    def text(self) -> str:
        return "".join(self.output)

    def wait_for_line(self, needle: str, timeout: float = COMMAND_TIMEOUT) -> str:
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                line = self._lines.get(timeout=remaining)
            except queue.Empty:
                break
            if line is None:
                pytest.fail(f"kodify_migrate ended before printing {needle!r}:\n{self.text()}")
            if needle in line:
                return line
        self.process.kill()
        pytest.fail(f"kodify_migrate did not print {needle!r} in time:\n{self.text()}")

    def finish(self) -> str:
        """Wait for the end; the output, after asserting that the command succeeded."""
        try:
            self.process.wait(COMMAND_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        assert self._pump is not None
        self._pump.join(10)
        if self.process.stdout is not None:
            self.process.stdout.close()
        assert self.process.returncode == 0, self.text()
        assert "Traceback" not in self.text()
        return self.text()


def start_migrate(env: dict[str, str], *, log_filelock: bool = False) -> MigrateRun:
    if log_filelock:
        command = [sys.executable, "-c", _MIGRATE_WITH_FILELOCK_LOG]
    else:
        command = [sys.executable, str(REPO / "manage.py"), "kodify_migrate"]
    process = subprocess.Popen(
        command,
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return MigrateRun(process)


def command_environment(tmp_path: Path, **overrides: str) -> dict[str, str]:
    """The environment of a fresh process: no DB_URL or REDIS_URL unless given."""
    env = server_environment(tmp_path, {})
    env.pop("DB_URL", None)
    env.pop("REDIS_URL", None)
    env["DJANGO_SETTINGS_MODULE"] = "kodify_site.settings"
    env["PYTHONUNBUFFERED"] = "1"
    env.update(overrides)
    return env


def every_migration() -> set[tuple[str, str]]:
    """What django_migrations holds once everything on disk is applied."""
    return set(MigrationLoader(None, ignore_no_migrations=True).graph.nodes)


def applied_lines(output: str) -> list[str]:
    return [line.strip() for line in output.splitlines() if line.strip().startswith("Applying ")]


# -- PostgreSQL -------------------------------------------------------------------------


@dataclass
class PostgresDatabase:
    name: str
    server: dict[str, Any]

    def connect(self, dbname: str | None = None) -> psycopg.Connection[Any]:
        return psycopg.connect(
            host=self.server["HOST"] or "127.0.0.1",
            port=int(self.server["PORT"] or 5432),
            user=self.server["USER"] or None,
            password=self.server["PASSWORD"] or None,
            dbname=dbname or self.name,
            autocommit=True,
        )

    @property
    def url(self) -> str:
        user = quote(self.server["USER"] or "", safe="")
        password = f":{quote(self.server['PASSWORD'], safe='')}" if self.server["PASSWORD"] else ""
        auth = f"{user}{password}@" if user else ""
        host = self.server["HOST"] or "127.0.0.1"
        return f"postgresql://{auth}{host}:{self.server['PORT'] or 5432}/{self.name}"

    def exists(self) -> bool:
        with self.connect("postgres") as admin:
            row = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [self.name])
            return row.fetchone() is not None

    def create(self) -> None:
        with self.connect("postgres") as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.name)))

    def drop(self) -> None:
        with self.connect("postgres") as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.name))
            )

    def migration_rows(self) -> list[tuple[str, str]]:
        with self.connect() as conn:
            rows = conn.execute("SELECT app, name FROM django_migrations ORDER BY id")
            return [(app, name) for app, name in rows.fetchall()]


@pytest.fixture
def postgres_database() -> Iterator[PostgresDatabase]:
    """A database name of this test's own on the run's PostgreSQL server, dropped after."""
    server = settings.DATABASES["default"]
    if server["ENGINE"] != "django.db.backends.postgresql":
        pytest.skip("needs DB_URL pointing at PostgreSQL")
    database = PostgresDatabase(f"kodify_mig_{uuid.uuid4().hex}", dict(server))
    yield database
    database.drop()


def test_creates_missing_postgresql_database_and_migrates_it(
    postgres_database: PostgresDatabase, tmp_path: Path
) -> None:
    assert not postgres_database.exists()

    output = start_migrate(command_environment(tmp_path, DB_URL=postgres_database.url)).finish()

    assert postgres_database.exists()
    rows = postgres_database.migration_rows()
    assert set(rows) == every_migration()
    assert ("contenttypes", "0001_initial") in rows
    assert MIGRATING in output
    assert "Applying contenttypes.0001_initial... OK" in output


def test_postgresql_replicas_starting_together_migrate_once(
    postgres_database: PostgresDatabase, tmp_path: Path
) -> None:
    env = command_environment(tmp_path, DB_URL=postgres_database.url)

    runs = [start_migrate(env) for _ in range(3)]
    outputs = [run.finish() for run in runs]

    applied = [line for output in outputs for line in applied_lines(output)]
    assert len(applied) == len(set(applied)) == len(every_migration()), outputs
    # The first to take the lock migrated everything; the others found nothing to do.
    assert sorted(len(applied_lines(output)) for output in outputs) == [0, 0, len(applied)]
    rows = postgres_database.migration_rows()
    assert len(rows) == len(set(rows))
    assert set(rows) == every_migration()

    again = start_migrate(env).finish()
    assert "No migrations to apply." in again
    assert postgres_database.migration_rows() == rows


def _waiting_for_advisory_lock(holder: psycopg.Connection[Any]) -> tuple[int, str] | None:
    """Another backend waiting for ADVISORY_LOCK_KEY on this database: (pid, application)."""
    row = holder.execute(
        """
        SELECT l.pid, a.application_name
        FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
        WHERE l.locktype = 'advisory' AND NOT l.granted
          AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
          AND l.classid::bigint = %s AND l.objid::bigint = %s AND l.objsubid = 1
          AND l.pid <> pg_backend_pid()
        """,
        [ADVISORY_LOCK_KEY >> 32, ADVISORY_LOCK_KEY & 0xFFFFFFFF],
    ).fetchone()
    return (int(row[0]), str(row[1])) if row else None


def test_postgresql_advisory_lock_makes_the_command_wait(
    postgres_database: PostgresDatabase, tmp_path: Path
) -> None:
    postgres_database.create()
    with postgres_database.connect() as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", [ADVISORY_LOCK_KEY])
        run = start_migrate(command_environment(tmp_path, DB_URL=postgres_database.url))

        waiting = None
        deadline = time.monotonic() + COMMAND_TIMEOUT
        while waiting is None and time.monotonic() < deadline:
            waiting = _waiting_for_advisory_lock(holder)
            if waiting is None:
                # Also the pause between two looks at pg_locks: a command that ends while
                # the lock is held did not wait for it.
                try:
                    run.process.wait(timeout=0.05)
                except subprocess.TimeoutExpired:
                    continue
                pytest.fail("kodify_migrate ended while the lock was held:\n" + run.finish())
        if waiting is None:
            run.process.kill()
            pytest.fail("kodify_migrate never waited for the advisory lock:\n" + run.text())

        assert waiting[1] == "kodify"
        assert run.process.poll() is None
        assert MIGRATING not in run.text()
        nothing_yet = holder.execute("SELECT to_regclass('django_migrations') IS NULL")
        assert nothing_yet.fetchone() == (True,)
        holder.execute("SELECT pg_advisory_unlock(%s)", [ADVISORY_LOCK_KEY])

        output = run.finish()
    assert MIGRATING in output
    assert set(postgres_database.migration_rows()) == every_migration()


# -- SQLite -----------------------------------------------------------------------------


def sqlite_rows(path: Path) -> list[tuple[str, str]]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return [
            (str(app), str(name))
            for app, name in db.execute("SELECT app, name FROM django_migrations ORDER BY id")
        ]


@pytest.mark.smoke
def test_sqlite_creates_the_data_folder_and_the_database(tmp_path: Path) -> None:
    data = tmp_path / "not" / "yet" / "data"
    env = command_environment(tmp_path, KODIFY_DATA_DIR=str(data))

    output = start_migrate(env).finish()

    database = data / "kodify.sqlite3"
    assert database.is_file()
    assert set(sqlite_rows(database)) == every_migration()
    assert MIGRATING in output


@pytest.mark.smoke
def test_sqlite_replicas_starting_together_migrate_once(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = command_environment(tmp_path, KODIFY_DATA_DIR=str(data))

    runs = [start_migrate(env) for _ in range(3)]
    outputs = [run.finish() for run in runs]

    applied = [line for output in outputs for line in applied_lines(output)]
    assert len(applied) == len(set(applied)) == len(every_migration()), outputs
    assert sorted(len(applied_lines(output)) for output in outputs) == [0, 0, len(applied)]
    rows = sqlite_rows(data / "kodify.sqlite3")
    assert len(rows) == len(set(rows))
    assert set(rows) == every_migration()
    assert "No migrations to apply." in start_migrate(env).finish()


@pytest.mark.smoke
def test_sqlite_file_lock_makes_the_command_wait(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    lock_path = str(data / "kodify.sqlite3") + ".migrate.lock"
    env = command_environment(tmp_path, KODIFY_DATA_DIR=str(data))

    with FileLock(lock_path):
        run = start_migrate(env, log_filelock=True)
        # filelock says so each time it finds the lock taken and backs off.
        waiting = run.wait_for_line("not acquired on")
        assert "kodify.sqlite3.migrate.lock" in waiting
        assert run.process.poll() is None
        assert MIGRATING not in run.text()

    output = run.finish()
    assert MIGRATING in output
    assert set(sqlite_rows(data / "kodify.sqlite3")) == every_migration()


# -- Celery task ------------------------------------------------------------------------


@pytest.mark.smoke
@pytest.mark.django_db(transaction=True)
def test_run_migrations_task_applies_what_is_missing() -> None:
    call_command("migrate", "sessions", "zero", verbosity=0)
    try:
        assert "django_session" not in connection.introspection.table_names()

        output = run_migrations.apply().get(timeout=COMMAND_TIMEOUT)

        assert MIGRATING in output
        assert "Applying sessions.0001_initial... OK" in output
        assert "django_session" in connection.introspection.table_names()
    finally:
        call_command("migrate", "sessions", verbosity=0)


@pytest.mark.smoke
@pytest.mark.django_db(transaction=True)
def test_run_migrations_task_runs_eagerly_without_redis() -> None:
    if settings.REDIS_URL:
        pytest.skip("with REDIS_URL the task goes to a Celery worker")

    result = run_migrations.delay()

    assert isinstance(result, EagerResult)
    assert result.successful()
    output = result.get(timeout=COMMAND_TIMEOUT)
    assert MIGRATING in output
    assert "No migrations to apply." in output
