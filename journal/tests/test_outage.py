"""The journal database goes away under load and comes back: no row lost, none doubled.

The database is a private PostgreSQL cluster (``private_postgres`` in conftest.py),
stopped with ``pg_ctl stop -m fast`` while records keep coming, then started again.
First a writer in this process (the spool and replay logic alone), then a real Kodify
server answering real requests, where the rows must match the X-Request-Id headers the
client received.
"""

from __future__ import annotations

import importlib.util
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.db import connections

from journal import writer as writer_module
from journal.models import ROLLUPS, TIMINGS, CompletionFate, Entry, Event
from journal.search import create_search_sql
from journal.tests.conftest import JOURNAL_DB, PrivateCluster
from journal.tests.test_writer import new_record, simple_row, spool_files
from journal.writer import JournalWriter
from kodify_site.databases import journal_database
from kodify_site.testing import KodifyServer, wait_until

pytestmark = pytest.mark.skipif(
    not os.environ.get("DB_URL"),
    reason="the outage tests run PostgreSQL servers of their own, with the PostgreSQL suite",
)

TOTAL = 300
STOP_AT = 100  # records sent before the database stops
START_AT = 200  # records sent before it starts again
# Replay waits for the writer's probe (at most PROBE_MAX_SECONDS apart), then drains.

ALIAS = "journal_outage"


def journal_rows(cluster: PrivateCluster) -> tuple[int, set[str]]:
    """(rows, distinct request ids) in the private journal; (-1, ∅) while it is down."""
    try:
        with cluster.connect() as connection:
            ids = [row[0] for row in connection.execute("SELECT request_id FROM journal_entry")]
    except Exception:
        return -1, set()
    return len(ids), {str(request_id) for request_id in ids}


def settled(cluster: PrivateCluster, spool_dir: Path, expected: int) -> Callable[[], bool]:
    def check() -> bool:
        return journal_rows(cluster)[0] == expected and not spool_files(spool_dir)

    return check


class Load:
    """Sends ``TOTAL`` items from a thread; the test waits on how many have gone."""

    def __init__(self, send: Callable[[int], None], *, pause_s: float) -> None:
        self.send = send
        self.pause_s = pause_s  # the load's pace, so that the outage falls mid-load
        self.sent = 0
        self.error: BaseException | None = None
        self._changed = threading.Condition()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            for index in range(TOTAL):
                self.send(index)
                with self._changed:
                    self.sent += 1
                    self._changed.notify_all()
                time.sleep(self.pause_s)
        except BaseException as exc:
            self.error = exc
            with self._changed:
                self._changed.notify_all()

    def start(self) -> Load:
        self.thread.start()
        return self

    def wait_sent(self, count: int, timeout: float = 60.0) -> None:
        with self._changed:
            ok = self._changed.wait_for(
                lambda: self.sent >= count or self.error is not None, timeout
            )
        assert self.error is None, self.error
        assert ok, f"only {self.sent} of {count} sent"


# -- a writer in this process -------------------------------------------------------------


@pytest.fixture
def private_alias(private_postgres: PrivateCluster, django_db_blocker: Any) -> Iterator[str]:
    """A connection alias for the private cluster, with the journal's tables."""
    config = journal_database(
        host="127.0.0.1", port=private_postgres.port, name=JOURNAL_DB, user="postgres", password=""
    )
    configured = connections.configure_settings({"default": {}, ALIAS: config})
    connections.settings[ALIAS] = configured[ALIAS]
    with django_db_blocker.unblock():
        try:
            connection = connections[ALIAS]
            with connection.schema_editor() as editor:
                rollups = (*ROLLUPS.values(), *TIMINGS.values(), CompletionFate)
                for model in (Entry, Event, *rollups):
                    editor.create_model(model)
                for statement in create_search_sql():
                    editor.execute(statement)
            connection.close()
            yield ALIAS
        finally:
            connections[ALIAS].close()
            del connections[ALIAS]
            del connections.settings[ALIAS]


def test_an_in_process_writer_loses_and_doubles_nothing_across_an_outage(
    private_postgres, private_alias, tmp_path, monkeypatch, caplog
):
    monkeypatch.setattr(writer_module, "PROBE_MAX_SECONDS", 1.0)
    spool_dir = tmp_path / "spool"
    writer = JournalWriter(
        alias=private_alias,
        spool_dir=spool_dir,
        build_row=simple_row,
        batch_size=20,
        flush_seconds=0.05,
    )
    writer.start()
    records = [new_record() for _ in range(TOTAL)]
    load = Load(lambda index: writer.submit(records[index]), pause_s=0.005).start()
    try:
        load.wait_sent(STOP_AT)
        assert wait_until(lambda: journal_rows(private_postgres)[0] > 0)
        private_postgres.stop()
        load.wait_sent(START_AT)
        assert writer.flush(10)
        assert writer.down
        private_postgres.start()
        load.wait_sent(TOTAL)
        assert writer.flush(10)
        assert wait_until(settled(private_postgres, spool_dir, TOTAL)), (
            journal_rows(private_postgres)[0],
            spool_files(spool_dir),
        )
    finally:
        writer.stop(10)
    count, ids = journal_rows(private_postgres)
    assert count == TOTAL
    assert ids == {rec.request_id for rec in records}
    # Counted as exactly as stored: each row once in the hourly and the daily rollups.
    with private_postgres.connect() as connection:
        counted = [
            connection.execute(
                f"SELECT SUM(requests) FROM {model._meta.db_table} WHERE dimension = 'all'"
            ).fetchone()
            for model in ROLLUPS.values()
        ]
    assert counted == [(TOTAL,), (TOTAL,)]
    assert writer.stats.spooled > 0 and writer.stats.replayed == writer.stats.spooled
    assert "Journal database unreachable" in caplog.text


# -- a real server ------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(
    importlib.util.find_spec("journal.rows") is None,
    reason="the server's writer needs journal/rows.py",
)
def test_a_server_loses_and_doubles_no_request_across_an_outage(
    private_postgres, kodify_server, fake_upstream, tmp_path
):
    spool_dir = tmp_path / "spool"
    server: KodifyServer = kodify_server(
        {
            "LOGS": "true",
            "LOGS_DB_HOST": "127.0.0.1",
            "LOGS_DB_PORT": str(private_postgres.port),
            "LOGS_DB_NAME": JOURNAL_DB,
            "LOGS_DB_USERNAME": "postgres",
            "RUN_MIGRATIONS": "true",  # the test database is migrated; the journal not yet
            "KODIFY_UPSTREAMS": fake_upstream.url,
            "KODIFY_JOURNAL_SPOOL_DIR": str(spool_dir),
            "KODIFY_JOURNAL_FLUSH_SECONDS": "0.1",
        }
    )
    request_ids: list[str] = []
    body = {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}]}
    with httpx.Client(base_url=server.url, timeout=30) as client:

        def send(index: int) -> None:
            response = client.post("/v1/chat/completions", json=body)
            assert response.status_code == 200, response.text
            request_ids.append(response.headers["x-request-id"])

        # One request first, written before the load starts: the writer and its
        # conversion helper process are up, so the outage falls on a running journal.
        warm_up = client.post("/v1/chat/completions", json=body).headers["x-request-id"]
        assert wait_until(lambda: journal_rows(private_postgres)[0] == 1)
        load = Load(send, pause_s=0.002).start()
        load.wait_sent(STOP_AT)
        private_postgres.stop()
        load.wait_sent(START_AT)
        private_postgres.start()
        load.wait_sent(TOTAL)
        load.thread.join(10)

    assert wait_until(settled(private_postgres, spool_dir, TOTAL + 1)), (
        journal_rows(private_postgres)[0],
        spool_files(spool_dir),
        server.log()[-3000:],
    )
    count, ids = journal_rows(private_postgres)
    assert count == TOTAL + 1
    assert ids == {warm_up, *request_ids} and len(request_ids) == TOTAL
    log = server.log()
    assert "Journal database unreachable" in log and "Journal database is back" in log
    assert not list(spool_dir.glob("rejected-*.jsonl"))


def test_a_server_starts_without_its_journal_database_and_creates_it_when_it_appears(
    private_postgres, kodify_server, fake_upstream, tmp_path
):
    with private_postgres.connect("postgres") as connection:
        connection.execute(f"DROP DATABASE {JOURNAL_DB}")
    private_postgres.stop()
    spool_dir = tmp_path / "spool"
    server: KodifyServer = kodify_server(
        {
            "LOGS": "true",
            "LOGS_DB_HOST": "127.0.0.1",
            "LOGS_DB_PORT": str(private_postgres.port),
            "LOGS_DB_NAME": JOURNAL_DB,
            "LOGS_DB_USERNAME": "postgres",
            "KODIFY_UPSTREAMS": fake_upstream.url,
            "KODIFY_JOURNAL_SPOOL_DIR": str(spool_dir),
            "KODIFY_JOURNAL_FLUSH_SECONDS": "0.1",
        }
    )
    assert "the journal database is not ready" in server.log()
    body = {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}]}
    with httpx.Client(base_url=server.url, timeout=30) as client:
        request_ids = {
            client.post("/v1/chat/completions", json=body).headers["x-request-id"]
            for _ in range(20)
        }
    assert wait_until(lambda: bool(spool_files(spool_dir))), "nothing reached the spool"
    private_postgres.start()
    assert wait_until(settled(private_postgres, spool_dir, 20)), server.log()[-3000:]
    assert journal_rows(private_postgres)[1] == request_ids
