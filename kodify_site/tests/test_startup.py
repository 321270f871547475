"""What a real server does before it serves: migrations on the first
start and with RUN_MIGRATIONS, WAIT_VLLM, and serving under daphne as well as uvicorn.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import orjson
import psycopg
import pytest
from django.conf import settings

from gateway.tests.fake_upstream import DEFAULT_MODEL, FakeUpstreamServer
from kodify_site import testing
from kodify_site.testing import KodifyServer, free_port
from kodify_site.tests.test_migrate import MIGRATING, every_migration, sqlite_rows

ServerFactory = Callable[..., KodifyServer]

CHAT = {"model": DEFAULT_MODEL, "messages": [{"role": "user", "content": "hello"}]}
# What the fake upstream answers by default: 16 chunks "tok0 ", "tok1 ", …
FAKE_TEXT = "".join(f"tok{i} " for i in range(16))


def use_sqlite(monkeypatch: pytest.MonkeyPatch) -> None:
    """Servers started after this get no DB_URL: the embedded SQLite in KODIFY_DATA_DIR."""
    monkeypatch.delenv("DB_URL", raising=False)


def log_lines(server: KodifyServer) -> list[str]:
    return server.log().splitlines()


def line_index(lines: list[str], needle: str) -> int:
    for index, line in enumerate(lines):
        if needle in line:
            return index
    raise AssertionError(f"{needle!r} is not in the log:\n" + "\n".join(lines))


def ready_index(lines: list[str]) -> int:
    """Where the server says it serves (uvicorn's line the guide points administrators to)."""
    return line_index(lines, "Application startup complete")


@pytest.mark.smoke
def test_first_start_on_an_empty_data_dir_creates_the_tables(
    kodify_server: ServerFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_sqlite(monkeypatch)
    data = tmp_path / "empty" / "data"

    server = kodify_server({"KODIFY_DATA_DIR": str(data)}, fresh_database=True)

    database = data / "kodify.sqlite3"
    assert database.is_file()
    assert set(sqlite_rows(database)) == every_migration()
    lines = log_lines(server)
    assert line_index(lines, MIGRATING) < ready_index(lines)
    assert httpx.get(server.url + "/health").status_code == 200


@pytest.mark.parametrize("backend", [pytest.param("sqlite", marks=pytest.mark.smoke), "postgresql"])
def test_run_migrations_runs_kodify_migrate_at_every_start(
    backend: str,
    kodify_server: ServerFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if backend == "sqlite":
        use_sqlite(monkeypatch)
    elif not _postgresql_run():
        pytest.skip("needs DB_URL pointing at PostgreSQL")
    # One database for every start below (on PostgreSQL: the test run's, migrated already).
    env = {"KODIFY_DATA_DIR": str(tmp_path / "shared" / "data")}

    kodify_server(env, fresh_database=True).stop()
    plain = kodify_server(env, fresh_database=True)
    plain.stop()
    assert MIGRATING not in plain.log()

    for _ in range(2):
        server = kodify_server({**env, "RUN_MIGRATIONS": "1"}, fresh_database=True)
        server.stop()
        lines = log_lines(server)
        assert line_index(lines, MIGRATING) < ready_index(lines)
        assert line_index(lines, "No migrations to apply.") < ready_index(lines)


def test_start_up_leaves_no_database_connection_open(kodify_server: ServerFactory) -> None:
    if not _postgresql_run():
        pytest.skip("needs DB_URL pointing at PostgreSQL")
    # A name of this server's own, to tell its connections from everyone else's.
    name = f"kodify-startup-{uuid.uuid4().hex[:12]}"
    url = f"{testing.test_database_url()}?application_name={name}"

    # Without the pool, which keeps connections open on purpose.
    kodify_server({"DB_URL": url, "RUN_MIGRATIONS": "1", "KODIFY_DB_POOL_SIZE": "0"})

    # Requests open their own connections (CONN_MAX_AGE 0); start-up's must not linger
    # for the life of every worker.
    with psycopg.connect(testing.test_database_url()) as observer:
        row = observer.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", [name]
        ).fetchone()
    assert row == (0,)


def _postgresql_run() -> bool:
    return bool(settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql")


@pytest.mark.smoke
def test_wait_vllm_gives_up_after_the_last_attempt_and_serves_anyway(
    kodify_server: ServerFactory,
) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"

    server = kodify_server(
        {
            "KODIFY_UPSTREAMS": nobody,
            "WAIT_VLLM": "1",
            "WAIT_VLLM_ATTEMPTS": "2",
            "WAIT_VLLM_TIMEOUT": "0.2",
        }
    )

    lines = log_lines(server)
    first = line_index(lines, f"waiting for upstream {nobody} (attempt 1 of 2)")
    second = line_index(lines, f"waiting for upstream {nobody} (attempt 2 of 2)")
    gave_up = line_index(lines, f"upstream {nobody} did not answer after 2 attempts")
    assert first < second < gave_up < ready_index(lines)
    assert "ERROR kodify.startup" in lines[gave_up]
    assert sum(f"upstream {nobody} is not ready yet" in line for line in lines) == 2
    assert "(attempt 3 of" not in server.log()

    health = httpx.get(server.url + "/health")
    assert health.status_code == 200
    report = health.json()
    assert report["upstreams_healthy"] == 0
    assert [(u["url"], u["healthy"]) for u in report["upstreams"]] == [(nobody, False)]

    response = httpx.post(server.url + "/v1/chat/completions", json=CHAT, timeout=30)
    assert response.status_code == 503
    assert int(response.headers["retry-after"]) >= 1
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "server_error"
    assert error["code"] == "upstream_unavailable"
    assert nobody.split("//")[1] not in error["message"]  # addresses go to the log only


@pytest.mark.smoke
def test_wait_vllm_finds_the_upstream_up_and_serves(
    kodify_server: ServerFactory, fake_upstream: FakeUpstreamServer
) -> None:
    server = kodify_server({"KODIFY_UPSTREAMS": fake_upstream.url, "WAIT_VLLM": "1"})

    lines = log_lines(server)
    waiting = line_index(lines, f"waiting for upstream {fake_upstream.url} (attempt 1 of 5)")
    # The start-up's own line ends there; the refresh loop's goes on with ", serving …".
    up = next(
        index
        for index, line in enumerate(lines)
        if line.endswith(f"kodify.startup: upstream {fake_upstream.url} is up")
    )
    assert waiting < up < ready_index(lines)
    assert "(attempt 2 of" not in server.log()
    assert "did not answer" not in server.log()

    response = httpx.post(server.url + "/v1/chat/completions", json=CHAT, timeout=30)
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == FAKE_TEXT


@pytest.mark.smoke
def test_daphne_serves_health_and_chat_completions(
    kodify_server: ServerFactory, fake_upstream: FakeUpstreamServer
) -> None:
    server = kodify_server({"KODIFY_UPSTREAMS": fake_upstream.url}, server="daphne")
    assert "Listening on TCP address" in server.log()  # daphne's words, not uvicorn's

    with httpx.Client(base_url=server.url, timeout=30) as client:
        health = client.get("/health")
        assert health.status_code == 200
        assert health.json()["status"] == "ok"

        answer = client.post("/v1/chat/completions", json=CHAT)
        assert answer.status_code == 200, answer.text
        assert answer.json()["choices"][0]["message"]["content"] == FAKE_TEXT

        with client.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True}) as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            lines = [line for line in stream.iter_lines() if line]
    assert all(line.startswith("data: ") for line in lines), lines
    events = [line[len("data: ") :] for line in lines]
    assert events[-1] == "[DONE]"
    chunks = [orjson.loads(event) for event in events[:-1]]
    text = "".join(chunk["choices"][0]["delta"].get("content") or "" for chunk in chunks)
    assert text == FAKE_TEXT
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
