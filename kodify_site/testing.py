"""Shared pytest fixtures (loaded with ``-p kodify_site.testing``, see pyproject.toml).

* each test run gets a PostgreSQL database of its own (``test_kodify_<pid>``), so runs on
  one machine never share state;
* ``fake_upstream``: the fake vLLM (gateway/tests/fake_upstream.py) on a free port;
* ``kodify_server``: a real Kodify under uvicorn in a subprocess, with the environment a
  test gives it, ready when uvicorn says "Application startup complete".
"""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from gateway.tests.fake_upstream import FakeUpstream, FakeUpstreamServer

REPO = Path(__file__).resolve().parent.parent
STARTUP_TIMEOUT = 60.0

# Variables of the environment a server under test must not inherit from the runner.
_SCRUB_PREFIXES = ("KODIFY_", "MTSAI_", "AUTH_TYPE", "VLLM_", "WAIT_VLLM", "MAX_N", "LOGS",
                   "USERS_TABLE", "RUN_MIGRATIONS", "COMPLETIONS_PREPROCESSING_CONFIG")


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix: None) -> None:
    from django.conf import settings

    default = settings.DATABASES["default"]
    if default["ENGINE"] == "django.db.backends.postgresql":
        default.setdefault("TEST", {})["NAME"] = f"test_{default['NAME']}_{os.getpid()}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def fake_upstream() -> Iterator[FakeUpstreamServer]:
    server = FakeUpstreamServer(FakeUpstream()).start()
    yield server
    server.stop()


@dataclass
class KodifyServer:
    url: str
    process: subprocess.Popen[str]
    output: list[str] = field(default_factory=list)

    def log(self) -> str:
        return "".join(self.output)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def server_environment(tmp_dir: Path, overrides: dict[str, str]) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(_SCRUB_PREFIXES) and key not in ("DB_URL", "REDIS_URL")
    }
    env["PYTHONPATH"] = str(REPO)
    env["KODIFY_DATA_DIR"] = str(tmp_dir / "data")
    env["KODIFY_SECRET_KEY"] = "test-secret-key-" + "x" * 40
    # The server shares the test run's databases, if any.
    if os.environ.get("DB_URL"):
        env["DB_URL"] = test_database_url()
    if os.environ.get("REDIS_URL"):
        env["REDIS_URL"] = os.environ["REDIS_URL"]
    env.update(overrides)
    return {key: value for key, value in env.items() if value is not None}


def test_database_url() -> str:
    from django.db import connections

    conf = connections["default"].settings_dict
    user = conf.get("USER") or ""
    password = f":{conf['PASSWORD']}" if conf.get("PASSWORD") else ""
    auth = f"{user}{password}@" if user else ""
    return f"postgresql://{auth}{conf['HOST']}:{conf['PORT'] or 5432}/{conf['NAME']}"


def start_server(
    tmp_dir: Path,
    env: dict[str, str] | None = None,
    *,
    workers: int = 1,
    server: str = "uvicorn",
) -> KodifyServer:
    port = free_port()
    tmp_dir.mkdir(parents=True, exist_ok=True)
    if server == "uvicorn":
        command = [
            sys.executable, "-m", "uvicorn", "kodify_site.asgi:application",
            "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
            "--loop", "uvloop", "--http", "httptools",
        ]
        ready = "Application startup complete"
    else:
        command = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
                   "kodify_site.asgi:application"]
        ready = "Listening on TCP address"
    process = subprocess.Popen(
        command,
        cwd=tmp_dir,
        env=server_environment(tmp_dir, env or {}),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    started = KodifyServer(url=f"http://127.0.0.1:{port}", process=process)
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            started.output.append(line)
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    while True:
        try:
            line = lines.get(timeout=STARTUP_TIMEOUT)
        except queue.Empty:
            started.stop()
            raise RuntimeError("Kodify did not start in time:\n" + started.log()) from None
        if line is None:
            process.wait(10)
            raise RuntimeError(
                f"Kodify exited with {process.returncode}:\n" + started.log()
            )
        if ready in line:
            return started


@pytest.fixture
def kodify_server(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[..., KodifyServer]]:
    """Factory: ``kodify_server({"KODIFY_UPSTREAMS": url})`` → a running server."""
    servers: list[KodifyServer] = []
    if os.environ.get("DB_URL"):
        request.getfixturevalue("django_db_setup")

    def factory(env: dict[str, str] | None = None, **kwargs: Any) -> KodifyServer:
        server = start_server(tmp_path / f"server{len(servers)}", env, **kwargs)
        servers.append(server)
        return server

    yield factory
    for server in servers:
        server.stop()
