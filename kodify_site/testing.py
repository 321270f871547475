"""Shared pytest fixtures (loaded with ``-p kodify_site.testing``, see pyproject.toml).

* each test run gets a PostgreSQL database of its own: the Makefile names the main
  database ``kodify_<pid>``, and pytest-django creates ``test_kodify_<pid>`` (under
  pytest-xdist one per worker, ``test_kodify_<pid>_gw0``, and the worker's Redis names
  end in ``-gw0`` too);
* what a test leaves outside its own transaction is undone after it (see
  :class:`RowsWrittenOutside` and :func:`pytest_fixture_post_finalizer`), so that tests
  pass in any order and on any worker;
* ``fake_upstream``: the fake vLLM (gateway/tests/fake_upstream.py) on a free port;
* ``kodify_server``: a real Kodify under uvicorn in a subprocess, with the environment a
  test gives it, ready once uvicorn listens and every worker has started.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

if TYPE_CHECKING:
    from gateway.tests.fake_upstream import FakeUpstreamServer

REPO = Path(__file__).resolve().parent.parent
STARTUP_TIMEOUT = 60.0
# How long a test waits for what another thread or process does: generous enough for a
# 2-core machine whose cores are both busy with other work.  Waits return as soon as
# their condition holds, so a quiet machine never waits this long.
WAIT_S = 60.0
_POLL_S = 0.05

T = TypeVar("T")


def wait_until(condition: Callable[[], T], timeout: float = WAIT_S, *, every: float = _POLL_S) -> T:
    """Poll ``condition`` every ``every`` seconds until it answers something true or
    ``timeout`` seconds pass; its last answer (so ``assert wait_until(...)`` fails with a
    false one).  A costly condition (a subprocess, a new connection) is asked less often."""
    deadline = time.monotonic() + timeout
    while True:
        answer = condition()
        if answer or time.monotonic() > deadline:
            return answer
        time.sleep(every)  # polling a condition with a deadline, not a timed wait


# Variables of the environment a server under test must not inherit from the runner.
_SCRUB_PREFIXES = (
    "KODIFY_",
    "MTSAI_",
    "AUTH_TYPE",
    "VLLM_",
    "WAIT_VLLM",
    "MAX_N",
    "LOGS",
    "USERS_TABLE",
    "RUN_MIGRATIONS",
    "COMPLETIONS_PREPROCESSING_CONFIG",
)


def _worker_redis_prefix() -> None:
    """Under pytest-xdist each worker (and the servers it starts) names its Redis keys
    after itself as well: the workers' stamps, queues and groups never meet, and each
    cleans up its own at the end.  Runs on import, before Django reads its settings."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    prefix = os.environ.get("KODIFY_REDIS_PREFIX", "")
    if worker and prefix.startswith("kodify-test-") and not prefix.endswith(f"-{worker}"):
        os.environ["KODIFY_REDIS_PREFIX"] = f"{prefix}-{worker}"


_worker_redis_prefix()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pytest_report_header() -> str:
    # Runs with a shifted clock (make test-future) say so at the top.
    return f"clock: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Remove what this run left in a shared Redis under its own prefix (the Makefile
    names it ``kodify-test-<pid>``): version stamps, queues, channel groups."""
    prefix = os.environ.get("KODIFY_REDIS_PREFIX", "")
    url = os.environ.get("REDIS_URL")
    if not url or not prefix.startswith("kodify-test-"):
        return
    import redis

    with contextlib.suppress(redis.RedisError), redis.Redis.from_url(url) as client:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start : start + 500])


@pytest.fixture
def fake_upstream() -> Iterator[FakeUpstreamServer]:
    # Imported here: the fake waits as long as this module says (WAIT_S).
    from gateway.tests.fake_upstream import FakeUpstream, FakeUpstreamServer

    server = FakeUpstreamServer(FakeUpstream()).start()
    yield server
    server.stop()


@dataclass
class KodifyServer:
    url: str
    process: subprocess.Popen[str]
    data_dir: Path
    output: list[str] = field(default_factory=list)
    reader: threading.Thread | None = None

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
        if self.reader is not None:
            self.reader.join(5)  # it stops at the end of the output
        if self.process.stdout is not None:
            self.process.stdout.close()


class WorkerReports:
    """The ``/health`` report each worker of a server gave last, asked on new connections.

    Each worker follows the console on its own: one that has caught up says nothing of
    the others, and which worker takes a connection is the kernel's choice.
    """

    def __init__(self, server: KodifyServer, workers: int) -> None:
        self.server = server
        self.workers = workers
        self.latest: dict[int, dict[str, Any]] = {}

    def all_meet(self, condition: Callable[[dict[str, Any]], bool]) -> bool:
        """Ask once more; whether every worker has answered and its last report meets
        ``condition``."""
        import httpx

        report = httpx.get(self.server.url + "/health", timeout=WAIT_S).json()
        self.latest[report["worker"]] = report
        return len(self.latest) == self.workers and all(map(condition, self.latest.values()))


def every_worker(
    server: KodifyServer, workers: int, condition: Callable[[dict[str, Any]], bool]
) -> bool:
    """Whether all ``workers`` of the server come to meet ``condition`` within ``WAIT_S``."""
    reports = WorkerReports(server, workers)
    return wait_until(lambda: reports.all_meet(condition))


def console_version(server: KodifyServer, workers: int) -> str:
    """The state of the console that every worker has applied, once they agree on one."""
    reports = WorkerReports(server, workers)

    def agreed() -> bool:
        heard = reports.all_meet(lambda report: True)
        return heard and len({r["console_version"] for r in reports.latest.values()}) == 1

    assert wait_until(agreed), f"the workers never agreed on the console: {reports.latest}"
    return str(next(iter(reports.latest.values()))["console_version"])


def console_applied(server: KodifyServer, workers: int, *, after: str) -> bool:
    """Whether every worker comes to apply a state of the console newer than ``after``
    (what :func:`console_version` said before a change in the console)."""
    return every_worker(server, workers, lambda report: report["console_version"] != after)


def seed_server(server: KodifyServer, env: dict[str, str], seed: Callable[[], None]) -> None:
    """Run ``seed`` (a module-level function) where the server will read what it makes.

    On PostgreSQL the server reads the test's own database, so this process seeds it; on
    SQLite the server has a database file of its own, in its data folder, which a
    ``manage.py shell`` beside it seeds.
    """
    if os.environ.get("DB_URL"):
        seed()
        return
    subprocess.run(
        [
            sys.executable,
            str(REPO / "manage.py"),
            "shell",
            "-c",
            f"from {seed.__module__} import {seed.__name__}; {seed.__name__}()",
        ],
        env=server_environment(server.data_dir.parent, env),
        cwd=server.data_dir.parent,
        check=True,
        capture_output=True,
        timeout=60,
    )


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
    if os.environ.get("KODIFY_REDIS_PREFIX"):  # the run's own names in a shared Redis
        env["KODIFY_REDIS_PREFIX"] = os.environ["KODIFY_REDIS_PREFIX"]
    env.update(overrides)
    return {key: value for key, value in env.items() if value is not None}


def test_database_url() -> str:
    """The URL of the test run's database, for servers started by the tests."""
    from django.db import connections

    conf = connections["default"].settings_dict
    user = conf.get("USER") or ""
    password = f":{conf['PASSWORD']}" if conf.get("PASSWORD") else ""
    auth = f"{user}{password}@" if user else ""
    return f"postgresql://{auth}{conf['HOST']}:{conf['PORT'] or 5432}/{conf['NAME']}"


test_database_url.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


def journal_entry(
    server: KodifyServer,
    request_id: str,
    *,
    database_url: str | None = None,
    timeout: float = WAIT_S,
) -> dict[str, Any] | None:
    """The journal row a server under test wrote for ``request_id``, once it is there.

    The journal writes in the background, so the row is polled for until ``timeout``.
    Reads the test run's PostgreSQL database (or ``database_url``), else the server's
    own SQLite file.
    """
    return wait_until(lambda: _read_journal_entry(server, request_id, database_url), timeout)


def journal_events(
    server: KodifyServer, response_id: str, *, count: int, timeout: float = WAIT_S
) -> list[dict[str, Any]]:
    """The Tabby events stored for ``response_id``, once there are ``count`` of them."""
    rows: list[dict[str, Any]] = []

    def enough() -> bool:
        rows[:] = _read_journal(
            server, "SELECT * FROM journal_event WHERE response_id = ", response_id, None
        )
        return len(rows) >= count

    wait_until(enough, timeout)
    return sorted(rows, key=lambda row: row["id"])


def journal_entries_sent_as(
    server: KodifyServer, client_request_id: str, *, count: int, timeout: float = WAIT_S
) -> list[dict[str, Any]]:
    """The journal rows of the requests whose client sent ``client_request_id`` as its
    X-Request-Id, once there are ``count`` of them, oldest first."""
    rows: list[dict[str, Any]] = []
    query = "SELECT * FROM journal_entry WHERE client_request_id = "

    def enough() -> bool:
        rows[:] = _read_journal(server, query, client_request_id, None)
        return len(rows) >= count

    wait_until(enough, timeout)
    return sorted(rows, key=lambda row: row["id"])


def _read_journal_entry(
    server: KodifyServer, request_id: str, database_url: str | None
) -> dict[str, Any] | None:
    rows = _read_journal(
        server, "SELECT * FROM journal_entry WHERE request_id = ", request_id, database_url
    )
    return rows[0] if rows else None


def _read_journal(
    server: KodifyServer, query: str, value: str, database_url: str | None
) -> list[dict[str, Any]]:
    if database_url or os.environ.get("DB_URL"):
        import psycopg
        from psycopg.rows import dict_row

        with psycopg.connect(database_url or test_database_url(), row_factory=dict_row) as conn:
            return conn.execute(query + "%s", (value,)).fetchall()
    import sqlite3

    with contextlib.closing(sqlite3.connect(server.data_dir / "kodify.sqlite3")) as conn:
        conn.row_factory = sqlite3.Row
        try:
            return [dict(row) for row in conn.execute(query + "?", (value,)).fetchall()]
        except sqlite3.OperationalError:  # locked by the writer this very moment
            return []


_sqlite_template: list[Path] = []


def migrated_sqlite_template() -> Path:
    """A migrated SQLite database, made once per run and copied into each server's data dir.

    Migrating a new SQLite file costs seconds; most servers under test need not prove that.
    """
    if not _sqlite_template:
        data_dir = Path(tempfile.mkdtemp(prefix="kodify-template-"))
        env = server_environment(data_dir, {"KODIFY_DATA_DIR": str(data_dir)})
        subprocess.run(
            [sys.executable, str(REPO / "manage.py"), "kodify_migrate", "--verbosity", "0"],
            env=env,
            check=True,
            cwd=data_dir,
        )
        _sqlite_template.append(data_dir / "kodify.sqlite3")
    return _sqlite_template[0]


# -- isolation: what a test leaves outside its own transaction -----------------------------
#
# Tests run in any order, on any pytest-xdist worker: none may find what another left.
# Two things escape a test's transaction on PostgreSQL, and are undone as soon as the
# test's database work is torn down:
# * rows that other processes (servers under test) commit into the test database;
# * the flush that ends a transactional test (``django_db(transaction=True)``), which also
#   empties what the data migrations wrote; Django's ``post_migrate`` handlers bring back
#   the permissions (and the gateway's and journal's grants), not the rest.

# The apps whose tables servers under test write: upstreams and their models, the console's
# settings, the journal, users, tokens and the audit trail.
_APPS_WRITTEN_BY_SERVERS = ("accounts", "gateway", "journal")
_INTEGER_KEYS = ("AutoField", "BigAutoField", "SmallAutoField")
_rows_to_remove: list[RowsWrittenOutside] = []


class RowsWrittenOutside:
    """The rows that other processes write into the test database from now on.

    They commit outside the test's transaction, so its rollback leaves them behind.
    Remembers the highest key of each table of the project's apps (keys only grow, in
    committed and rolled-back transactions alike); :meth:`remove_when_possible` deletes
    the rows above it, at once or, while the test's transaction is open, right after it.
    """

    def __init__(self, request: pytest.FixtureRequest) -> None:
        from django.apps import apps
        from django.db.models import Max

        self.blocker = request.getfixturevalue("django_db_blocker")
        self.marks: dict[Any, int] = {}
        with self.blocker.unblock():
            for label in _APPS_WRITTEN_BY_SERVERS:
                for model in apps.get_app_config(label).get_models():
                    if model._meta.pk.get_internal_type() in _INTEGER_KEYS:
                        highest = model._default_manager.aggregate(highest=Max("pk"))["highest"]
                        self.marks[model] = highest or 0

    def remove_when_possible(self) -> None:
        from django.db import connections

        if any(c.in_atomic_block for c in connections.all(initialized_only=True)):
            _rows_to_remove.append(self)  # see pytest_fixture_post_finalizer
        else:
            self.remove()

    def remove(self) -> None:
        with self.blocker.unblock():
            for model, mark in self.marks.items():
                model._default_manager.filter(pk__gt=mark).delete()


_DATA_MIGRATIONS = (
    ("accounts.roles", "create_roles"),
    ("gateway.migrations.0002_health_check_schedule", "create_schedule"),
)
_migrated_apps: list[Any] = []


def _restore_migration_data(blocker: Any) -> None:
    """Run the data migrations' code again (it leaves what exists alone), with the apps as
    the last migrations left them, as ``migrate`` would."""
    from django.db import connection
    from django.db.migrations.loader import MigrationLoader

    with blocker.unblock():
        if not _migrated_apps:
            _migrated_apps.append(MigrationLoader(connection).project_state().apps)
        for module, function in _DATA_MIGRATIONS:
            getattr(importlib.import_module(module), function)(_migrated_apps[0], None)


def _transactional(request: pytest.FixtureRequest) -> bool:
    """Whether pytest-django ran the test as a ``TransactionTestCase`` (as it decides)."""
    from pytest_django.fixtures import validate_django_db

    marker = request.node.get_closest_marker("django_db")
    transaction, reset_sequences, *_ = validate_django_db(marker) if marker else (False, False)
    flushing = {"transactional_db", "live_server", "django_db_reset_sequences"}
    return bool(transaction or reset_sequences or flushing & set(request.fixturenames))


def pytest_fixture_post_finalizer(fixturedef: Any, request: pytest.FixtureRequest) -> None:
    """pytest-django's helper has just rolled the test's transaction back, or flushed the
    database; the test database is still there (torn down with the session)."""
    if fixturedef.argname != "_django_db_helper":
        return
    while _rows_to_remove:
        _rows_to_remove.pop().remove()
    if _transactional(request):
        from pytest_django.plugin import blocking_manager_key

        _restore_migration_data(request.config.stash[blocking_manager_key])


def start_server(
    tmp_dir: Path,
    env: dict[str, str] | None = None,
    *,
    workers: int = 1,
    server: str = "uvicorn",
    fresh_database: bool = False,
) -> KodifyServer:
    """Start Kodify; on SQLite its data dir starts migrated unless ``fresh_database``."""
    port = free_port()
    tmp_dir.mkdir(parents=True, exist_ok=True)
    if not os.environ.get("DB_URL") and not fresh_database:
        (tmp_dir / "data").mkdir(exist_ok=True)
        shutil.copy(migrated_sqlite_template(), tmp_dir / "data" / "kodify.sqlite3")
    if server == "uvicorn":
        # As production starts it: uvicorn with production's flags.
        command = [
            sys.executable,
            "-m",
            "kodify_site.serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ]
        # Listening ("Uvicorn running on") and every worker started, in either order.
        ready = ["Uvicorn running on", *["Application startup complete"] * workers]
    else:
        command = [
            sys.executable,
            "-m",
            "daphne",
            "-b",
            "127.0.0.1",
            "-p",
            str(port),
            "kodify_site.asgi:application",
        ]
        ready = ["Listening on TCP address"]
    process = subprocess.Popen(
        command,
        cwd=tmp_dir,
        env=server_environment(tmp_dir, env or {}),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    started = KodifyServer(
        url=f"http://127.0.0.1:{port}", process=process, data_dir=tmp_dir / "data"
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            started.output.append(line)
            lines.put(line)
        lines.put(None)

    started.reader = threading.Thread(target=pump, daemon=True)
    started.reader.start()
    while True:
        try:
            line = lines.get(timeout=STARTUP_TIMEOUT)
        except queue.Empty:
            started.stop()
            raise RuntimeError("Kodify did not start in time:\n" + started.log()) from None
        if line is None:
            process.wait(10)
            if process.stdout is not None:
                process.stdout.close()
            raise RuntimeError(f"Kodify exited with {process.returncode}:\n" + started.log())
        for index, expected in enumerate(ready):
            if expected in line:
                del ready[index]
                break
        if not ready:
            return started


def _server_factory(
    request: pytest.FixtureRequest, base: Path
) -> Iterator[Callable[..., KodifyServer]]:
    servers: list[KodifyServer] = []
    written: RowsWrittenOutside | None = None
    if os.environ.get("DB_URL"):
        request.getfixturevalue("django_db_setup")  # the server uses the test database
        from django.db import OperationalError

        try:
            written = RowsWrittenOutside(request)
        except OperationalError:  # no database yet (no test here uses one): nothing to undo
            written = None

    def factory(env: dict[str, str] | None = None, **kwargs: Any) -> KodifyServer:
        server = start_server(base / f"server{len(servers)}", env, **kwargs)
        servers.append(server)
        return server

    yield factory
    for server in servers:
        server.stop()
    if written is not None and servers:
        written.remove_when_possible()


@pytest.fixture
def kodify_server(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[..., KodifyServer]]:
    """Factory: ``kodify_server({"KODIFY_UPSTREAMS": url})`` → a running server."""
    yield from _server_factory(request, tmp_path)


@pytest.fixture(scope="module")
def module_kodify_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., KodifyServer]]:
    """The same factory, for servers shared by the tests of one module."""
    yield from _server_factory(request, tmp_path_factory.mktemp("servers"))


@pytest.fixture(scope="module")
def module_fake_upstream() -> Iterator[FakeUpstreamServer]:
    from gateway.tests.fake_upstream import FakeUpstream, FakeUpstreamServer

    server = FakeUpstreamServer(FakeUpstream()).start()
    yield server
    server.stop()


# -- a real browser for the console's tests -----------------------------------------------

CHROMIUM = Path("/usr/bin/chromium")  # Debian's (make install-dev); Playwright only drives it
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def _browser_environment() -> dict[str, str | float | bool]:
    """This process's environment, with the whole clock shifted under ``make test-future``.

    There Python runs under libfaketime with the real monotonic clock (its timed waits
    hang on a shifted one), while Chromium's processes stop talking to each other unless
    their monotonic clock is shifted along with the wall clock: the browser gets both.
    """
    env: dict[str, str | float | bool] = dict(os.environ)
    env.pop("FAKETIME_DONT_FAKE_MONOTONIC", None)
    return env


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """Headless Chromium under Playwright's sync API (a ``playwright`` ``Browser``).

    Not a fixture: Playwright's sync API runs an event loop on this thread, and Django's
    ORM refuses to run beside one, so a test does its database work before it starts.
    """
    from playwright.sync_api import expect, sync_playwright

    # Playwright's assertions wait 5 s by default, its own clock and not the page's: on a
    # busy machine a row that a server sends a moment later misses that.  An assertion
    # still passes as soon as it holds; the deadline only bounds a failure.
    expect.set_options(timeout=WAIT_S * 1000)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, env=_browser_environment()
        )
        try:
            yield browser
        finally:
            browser.close()
