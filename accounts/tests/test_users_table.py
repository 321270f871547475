"""USERS_TABLE: the API users' table is created where the guide's setting says, or refused."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from kodify_site.testing import REPO, server_environment

needs_postgres = pytest.mark.skipif(not os.environ.get("DB_URL"), reason="needs DB_URL")
ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def run(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=tmp_path,
        env=server_environment(tmp_path, env),
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def database() -> Iterator[str]:
    name = f"kodify_ut_{uuid.uuid4().hex[:12]}"
    yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@needs_postgres
def test_a_schema_qualified_users_table_is_created_and_used(tmp_path: Path, database: str) -> None:
    env = {"DB_URL": database, "USERS_TABLE": "kodify_auth.api_people"}
    migrated = run(tmp_path, env, str(REPO / "manage.py"), "kodify_migrate", "--verbosity", "0")
    assert migrated.returncode == 0, migrated.stderr
    created = run(
        tmp_path,
        env,
        str(REPO / "manage.py"),
        "shell",
        "-c",
        "from accounts import services; services.create_user(username='ada')",
    )
    assert created.returncode == 0, created.stderr
    with psycopg.connect(database) as conn:
        rows = conn.execute("SELECT username FROM kodify_auth.api_people").fetchall()
    assert rows == [("ada",)]

    # Pointing USERS_TABLE elsewhere afterwards would lose the users: the start is refused.
    moved = run(tmp_path, {**env, "USERS_TABLE": "api_people"}, "-c", "import kodify_site.asgi")
    assert moved.returncode == 1
    assert "Kodify cannot start: USERS_TABLE names the table api_people" in moved.stderr
    assert "kodify.E022" in moved.stderr


@needs_postgres
def test_the_default_users_table_is_the_guides_kodify_api_users(
    tmp_path: Path, database: str
) -> None:
    migrated = run(
        tmp_path,
        {"DB_URL": database},
        str(REPO / "manage.py"),
        "kodify_migrate",
        "--verbosity",
        "0",
    )
    assert migrated.returncode == 0, migrated.stderr
    with psycopg.connect(database) as conn:
        found = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'kodify_api_users'"
        ).fetchone()
    assert found == (1,)


@pytest.mark.smoke
@pytest.mark.parametrize(
    ("value", "check_id", "words"),
    [
        ("auth.api_users", "kodify.E021", "only PostgreSQL"),
        ("api users", "kodify.E020", "is not a table name"),
        ("a.b.c", "kodify.E020", "is not a table name"),
    ],
)
def test_unusable_users_table_names_stop_the_check(
    tmp_path: Path, value: str, check_id: str, words: str
) -> None:
    env = {"USERS_TABLE": value, "DB_URL": ""}
    result = run(tmp_path, env, str(REPO / "manage.py"), "check")
    assert result.returncode != 0
    line = next(line for line in result.stderr.splitlines() if check_id in line)
    assert words in line
