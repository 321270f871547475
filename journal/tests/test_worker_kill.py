"""A uvicorn worker killed with ``kill -9`` under load: every request it answered is in
the journal, once (a real Kodify, two workers, the fake vLLM)."""

from __future__ import annotations

import concurrent.futures
import os
import signal
import threading
from typing import Any

import httpx
import pytest

from gateway.tests.fake_upstream import DEFAULT_MODEL, FakeUpstreamServer
from journal.handoff import HANDOFF_SUBDIR
from kodify_site.testing import WAIT_S, KodifyServer, wait_until

pytestmark = [pytest.mark.smoke, pytest.mark.django_db(transaction=True)]

REQUESTS = 200
CLIENTS = 20
KILL_AFTER = 80


def _journal_counts(server: KodifyServer, request_ids: list[str]) -> dict[str, int]:
    if os.environ.get("DB_URL"):
        import psycopg

        from kodify_site.testing import test_database_url

        with psycopg.connect(test_database_url()) as conn:
            rows = conn.execute(
                "SELECT request_id, count(*) FROM journal_entry WHERE request_id = ANY(%s) "
                "GROUP BY request_id",
                (request_ids,),
            ).fetchall()
    else:
        import contextlib
        import sqlite3

        with contextlib.closing(sqlite3.connect(server.data_dir / "kodify.sqlite3")) as conn:
            marks = ",".join("?" * len(request_ids))
            rows = conn.execute(
                f"SELECT request_id, count(*) FROM journal_entry "
                f"WHERE request_id IN ({marks}) GROUP BY request_id",
                request_ids,
            ).fetchall()
    return dict(rows)


def test_requests_answered_by_a_killed_worker_all_reach_the_journal_once(
    kodify_server: Any, fake_upstream: FakeUpstreamServer
) -> None:
    server = kodify_server(
        {
            "KODIFY_UPSTREAMS": fake_upstream.url,
            "LOGS": "true",
            # Records stay in the workers' memory until shutdown: all of a killed
            # worker's would be lost without the hand-off log.
            "KODIFY_JOURNAL_FLUSH_SECONDS": "60",
            "KODIFY_JOURNAL_BATCH_SIZE": "10000",
        },
        workers=2,
    )
    answered: list[str] = []
    lock = threading.Lock()
    enough = threading.Event()
    body = {"model": DEFAULT_MODEL, "messages": [{"role": "user", "content": "hi " * 500}]}

    def one(client: httpx.Client) -> None:
        try:
            response = client.post("/v1/chat/completions", json=body)
        except httpx.HTTPError:
            return  # cut off by the kill: not answered
        if response.status_code == 200:
            with lock:
                answered.append(response.headers["x-request-id"])
                if len(answered) >= KILL_AFTER:
                    enough.set()

    def workers_seen() -> set[int]:
        seen: set[int] = set()

        def look() -> bool:
            with httpx.Client(base_url=server.url, timeout=WAIT_S) as fresh:
                seen.add(fresh.get("/health").json()["worker"])
            return len(seen) == 2

        assert wait_until(look), "never heard from both workers"
        return seen

    before = workers_seen()
    victim = min(before)
    with (
        httpx.Client(
            base_url=server.url,
            timeout=WAIT_S,
            limits=httpx.Limits(max_connections=CLIENTS),
        ) as client,
        concurrent.futures.ThreadPoolExecutor(CLIENTS) as pool,
    ):
        futures = [pool.submit(one, client) for _ in range(REQUESTS)]
        assert enough.wait(WAIT_S)
        os.kill(victim, signal.SIGKILL)
        concurrent.futures.wait(futures)
    assert len(answered) >= KILL_AFTER

    # uvicorn starts a worker in the dead one's place; it recovers the dead one's records.
    handoff = server.data_dir / "journal-spool" / HANDOFF_SUBDIR
    assert wait_until(lambda: not list(handoff.glob(f"wal-{victim}-*"))), server.log()[-3000:]
    assert wait_until(lambda: not list(handoff.parent.glob("spool-*.jsonl")))
    server.stop()  # the live workers store what they hold

    counts = _journal_counts(server, answered)
    missing = [request_id for request_id in answered if request_id not in counts]
    assert not missing, f"{len(missing)} answered requests not journaled:\n" + server.log()[-3000:]
    assert set(counts.values()) == {1}
