"""``manage.py kodify_wait``: what a container's entry point runs before the server."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from kodify_site.testing import free_port, server_environment

REPO = Path(__file__).resolve().parents[2]


def wait(tmp_path: Path, timeout: float, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", "kodify_wait", "--timeout", str(timeout)],
        cwd=REPO,
        env=server_environment(tmp_path, env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_database_server_that_answers_is_enough(tmp_path: Path) -> None:
    # The database itself need not exist: kodify_migrate creates it.
    result = wait(tmp_path, 30, DB_URL="postgresql://postgres@127.0.0.1:5432/kodify_never_made")
    assert result.returncode == 0, result.stderr


def test_gives_up_naming_what_did_not_answer(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    result = wait(tmp_path, 1, DB_URL=f"postgresql://postgres@127.0.0.1:{port}/kodify")
    assert result.returncode == 1
    assert f'database "default" at 127.0.0.1:{port} did not answer in time' in result.stderr
    assert "Connection refused" in result.stderr or "connection" in result.stderr.lower()


def test_waits_for_redis_too(tmp_path: Path) -> None:
    port = free_port()
    result = wait(tmp_path, 1, REDIS_URL=f"redis://127.0.0.1:{port}/0")
    assert result.returncode == 1
    assert "Redis did not answer in time" in result.stderr
