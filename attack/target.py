"""The server under attack: Kodify as production runs it, on 127.0.0.1, for one run only.

``python -m kodify_site.serve --workers 2`` (uvicorn with production's flags) in per-user
mode, with PostgreSQL (a database of this run's own, dropped at the end), Redis (keys under
a prefix of this run's own, removed at the end), the journal on in a database of its own
reached through :class:`~attack.tcp_proxy.TcpProxy` (so that an outage can be staged), and
two fake vLLMs: one that serves, one that the attack stops to see what an error tells
about it.  Starting the processes is ``bench/servers.py``'s, imported, not copied.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from attack.tcp_proxy import TcpProxy
from bench.servers import (
    REPO,
    STARTUP_TIMEOUT_S,
    UVICORN_READY,
    ServerProcess,
    StartupError,
    free_port,
    kodify_environment,
    start_fake_upstream,
)

MODEL = "attack-model"  # served by the fake upstream that stays up
DOOMED_MODEL = "attack-doomed"  # served by the one the attack stops
WORKERS = 2
# Smaller than production's defaults so that the cases that exceed them stay cheap.
MAX_BODY_BYTES = 1024 * 1024
HEADER_TIMEOUT_S = 2.0
BODY_TIMEOUT_S = 5.0
# Every request of the attack comes from 127.0.0.1: the per-address limit on failed
# logins would turn the random-token cases' 401s into 429s part-way (it has tests of its
# own), so it is raised here; everything else keeps production's defaults.
AUTH_FAILURES_PER_MINUTE = 100_000
_OUT = "KODIFY_ATTACK_USERS="
_CREATE_USERS = f"""
import json
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from accounts import services
from accounts.roles import AUDITORS
big = dict(requests_per_minute=1_000_000, max_concurrent=1000)
out = {{}}
for name in ("attacker", "bystander", "fuzzer"):
    user = services.create_user(username=name, **big)
    _, plain = services.issue_token(user=user, name=name + "-ide")
    out[name] = {{"id": user.pk, "token": plain}}
auditor = get_user_model().objects.create_user(
    "auditor", password=AUDITOR_PASSWORD, is_staff=True
)
auditor.groups.add(Group.objects.get(name=AUDITORS))
print({_OUT!r} + json.dumps(out))
"""


@dataclass
class Target:
    """A running Kodify and what the checks need to reach and read it."""

    url: str
    server: ServerProcess
    upstream: ServerProcess
    upstream_url: str
    doomed: ServerProcess
    doomed_url: str
    proxy: TcpProxy
    database_url: str  # the main database (users, tokens)
    journal_url: str  # the journal's own database, directly (not through the proxy)
    admin_key: str
    auditor_password: str
    users: dict[str, dict[str, Any]] = field(default_factory=dict)

    def bearer(self, user: str = "attacker") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.users[user]['token']}"}

    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_key}"}

    def host_port(self) -> tuple[str, int]:
        parts = urllib.parse.urlsplit(self.url)
        return parts.hostname or "127.0.0.1", parts.port or 80

    def journal_rows(self, request_ids: list[str]) -> list[dict[str, Any]]:
        """The journal rows of these request ids (duplicates included)."""
        import psycopg
        from psycopg.rows import dict_row

        if not request_ids:
            return []
        with psycopg.connect(self.journal_url, row_factory=dict_row) as conn:
            query = "SELECT * FROM journal_entry WHERE request_id = ANY(%s)"
            return conn.execute(query, (request_ids,)).fetchall()


def server_root(base_url: str) -> tuple[str, dict[str, str]]:
    """The maintenance database URL of the PostgreSQL that ``base_url`` names, and its
    connection parts (the run's own databases are made beside the one it names)."""
    parts = urllib.parse.urlsplit(base_url)
    info = {
        "host": parts.hostname or "127.0.0.1",
        "port": str(parts.port or 5432),
        "user": urllib.parse.unquote(parts.username or "postgres"),
        "password": urllib.parse.unquote(parts.password or ""),
    }
    return urllib.parse.urlunsplit(parts._replace(path="/postgres", query="")), info


def database_url(info: dict[str, str], name: str, port: int | None = None) -> str:
    auth = urllib.parse.quote(info["user"])
    if info["password"]:
        auth += ":" + urllib.parse.quote(info["password"])
    return f"postgresql://{auth}@{info['host']}:{port or info['port']}/{name}"


@contextlib.contextmanager
def databases(base_url: str, names: list[str]) -> Iterator[dict[str, str]]:
    """Create the run's databases; drop them at the end, whatever happened."""
    import psycopg

    root, info = server_root(base_url)
    with psycopg.connect(root, autocommit=True) as conn:
        for name in names:
            conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield info
    finally:
        with psycopg.connect(root, autocommit=True) as conn:
            for name in names:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A prefix of the run's own for Redis's keys; its keys are removed at the end."""
    prefix = f"kodify-attack-{os.getpid()}-{secrets.token_hex(3)}"
    try:
        yield prefix
    finally:
        import redis

        with contextlib.suppress(redis.RedisError), redis.Redis.from_url(redis_url) as client:
            keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
            for start in range(0, len(keys), 500):
                client.delete(*keys[start : start + 500])


@contextlib.contextmanager
def started(base_db_url: str, redis_url: str) -> Iterator[Target]:
    """Everything up, yielded as a :class:`Target`; everything stopped and removed after."""
    name = f"kodify_attack_{os.getpid()}_{secrets.token_hex(2)}"
    workdir = Path(tempfile.mkdtemp(prefix="kodify-attack-"))
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        info = stack.enter_context(databases(base_db_url, [name, name + "_journal"]))
        prefix = stack.enter_context(redis_prefix(redis_url))
        upstream, upstream_url = start_fake_upstream(workdir / "fake", 8, (MODEL,))
        stack.callback(upstream.stop)
        doomed, doomed_url = start_fake_upstream(workdir / "doomed", 4, (DOOMED_MODEL,))
        stack.callback(doomed.stop)
        proxy = TcpProxy(info["host"], int(info["port"])).start()
        stack.callback(proxy.close)
        admin_key = secrets.token_urlsafe(32)
        auditor_password = secrets.token_urlsafe(16)
        env = kodify_environment(
            workdir,
            f"{upstream_url},{doomed_url}",
            {
                "KODIFY_SECRET_KEY": secrets.token_urlsafe(50),
                "DB_URL": database_url(info, name),
                "REDIS_URL": redis_url,
                "KODIFY_REDIS_PREFIX": prefix,
                "MTSAI_AUTH": "true",
                "AUTH_TYPE": "DB",
                "LOGS": "true",
                "LOGS_DB_HOST": "127.0.0.1",
                "LOGS_DB_PORT": str(proxy.port),
                "LOGS_DB_NAME": name + "_journal",
                "LOGS_DB_USERNAME": info["user"],
                "LOGS_DB_PASSWORD": info["password"],
                "KODIFY_ADMIN_API_KEY": admin_key,
                "KODIFY_MAX_BODY_BYTES": str(MAX_BODY_BYTES),
                "KODIFY_HEADER_TIMEOUT": str(HEADER_TIMEOUT_S),
                "KODIFY_BODY_TIMEOUT": str(BODY_TIMEOUT_S),
                "KODIFY_AUTH_FAILURES_PER_MINUTE": str(AUTH_FAILURES_PER_MINUTE),
                "KODIFY_METRICS_DIR": str(workdir / "metrics"),
            },
        )
        users = _prepare_database(workdir, env, auditor_password)
        port = free_port()
        argv = [
            sys.executable, "-m", "kodify_site.serve",
            "--host", "127.0.0.1", "--port", str(port), "--workers", str(WORKERS),
        ]  # fmt: skip
        server = ServerProcess("Kodify under attack", argv, workdir / "kodify", env)
        stack.callback(server.stop)
        server.wait_for_lines([UVICORN_READY[1], *[UVICORN_READY[0]] * WORKERS])
        yield Target(
            url=f"http://127.0.0.1:{port}",
            server=server,
            upstream=upstream,
            upstream_url=upstream_url,
            doomed=doomed,
            doomed_url=doomed_url,
            proxy=proxy,
            database_url=database_url(info, name),
            journal_url=database_url(info, name + "_journal"),
            admin_key=admin_key,
            auditor_password=auditor_password,
            users=users,
        )


def _prepare_database(
    workdir: Path, env: dict[str, str], auditor_password: str
) -> dict[str, dict[str, Any]]:
    """Migrate both databases, then make the attack's API users, tokens and auditor."""
    manage = [sys.executable, str(REPO / "manage.py")]
    _run(workdir, env, [*manage, "kodify_migrate", "--verbosity", "0"])
    snippet = f"AUDITOR_PASSWORD = {auditor_password!r}\n{_CREATE_USERS}"
    output = _run(workdir, env, [*manage, "shell", "--no-imports", "-c", snippet])
    for line in output.splitlines():
        if line.startswith(_OUT):
            users: dict[str, dict[str, Any]] = json.loads(line[len(_OUT) :])
            return users
    raise StartupError(f"no users in the output of the shell snippet:\n{output}")


def _run(workdir: Path, env: dict[str, str], argv: list[str]) -> str:
    workdir.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        argv, cwd=workdir, env=env, capture_output=True, text=True, check=False,
        timeout=STARTUP_TIMEOUT_S * 3,
    )  # fmt: skip
    if done.returncode:
        raise StartupError(f"manage.py {argv[2]} failed:\n{done.stdout}{done.stderr}")
    return done.stdout
