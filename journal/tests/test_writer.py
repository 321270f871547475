"""The journal writer against the test database: batching, flush, the spool, replay.

The writers here turn records into rows with a small converter of their own
(:func:`simple_row`), so that each test decides exactly what the database receives
(a refused row, a duplicate) independently of ``journal/rows.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from django import db

from journal import converter as converter_module
from journal import live_publish, recorder
from journal import writer as writer_module
from journal.models import Entry
from journal.record import Record
from journal.spool import Spool
from journal.writer import JournalWriter
from kodify_site import testing
from kodify_site.testing import WAIT_S

pytestmark = pytest.mark.django_db(transaction=True)

POISON = "poison"  # a Record.error that simple_row turns into a row the database refuses


def simple_row(rec: Record) -> dict[str, Any]:
    return {
        "created_at": datetime.fromtimestamp(rec.started_at, UTC),
        "request_id": rec.request_id,
        "endpoint": rec.endpoint,
        "feature": rec.feature,
        "model": rec.model,
        "client_ip": rec.client_ip,
        "request_body": rec.request_body.decode(),
        "status": None if rec.error == POISON else rec.status,
        "error": rec.error,
        "latency_ms": 1.5,
        "stream": rec.stream,
    }


def new_record(**fields: Any) -> Record:
    values: dict[str, Any] = {
        "request_id": uuid.uuid4().hex,
        "endpoint": "/v1/chat/completions",
        "feature": "chat",
        "model": "fake-model",
        "status": 200,
        "client_ip": "10.0.0.7",
        "request_body": b'{"messages": []}',
        **fields,
    }
    return Record(**values)


def wait_until(condition: Callable[[], bool], timeout: float = WAIT_S) -> bool:
    """Poll a condition that another thread makes true (a database count, a file)."""
    return testing.wait_until(lambda: holds(condition), timeout)


def holds(condition: Callable[[], bool]) -> bool:
    try:
        return condition()
    except db.OperationalError:
        # SQLite's in-memory test database locks a table while the writer inserts.
        return False


def stored_ids() -> list[str]:
    return list(Entry.objects.order_by("request_id").values_list("request_id", flat=True))


def spool_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("spool-*.jsonl"))


def write_spool_file(path: Path, rows: list[dict[str, Any]], *, tail: bytes = b"") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(orjson.dumps(row) + b"\n" for row in rows) + tail)


@pytest.fixture
def spool_dir(tmp_path: Path) -> Path:
    return tmp_path / "spool"


@contextlib.contextmanager
def writers(spool_dir: Path, **defaults: Any) -> Iterator[Callable[..., JournalWriter]]:
    """Factory of writers on the test database, all stopped at the end; ``start=False``
    leaves the thread off.  ``defaults``: options every writer gets unless told otherwise."""
    made: list[JournalWriter] = []

    def factory(*, start: bool = True, **options: Any) -> JournalWriter:
        options.setdefault("spool_dir", spool_dir)
        options.setdefault("build_row", simple_row)
        writer = JournalWriter(**{**defaults, **options})
        made.append(writer)
        if start:
            writer.start()
        return writer

    yield factory
    for writer in made:
        writer.stop(WAIT_S)
        assert not writer.is_alive()


@pytest.fixture
def make_writer(spool_dir: Path) -> Iterator[Callable[..., JournalWriter]]:
    with writers(spool_dir, flush_seconds=0.05) as factory:
        yield factory


class Outage:
    """Wraps a writer's store: while ``down`` every call fails as a lost server would."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.down = False
        self.batches: list[int] = []

    def insert(self, rows: list[dict[str, Any]], *, skip_stored: bool) -> None:
        if self.down:
            raise db.OperationalError("connection refused")
        self.store.insert(rows, skip_stored=skip_stored)
        self.batches.append(len(rows))

    def probe(self) -> None:
        if self.down:
            raise db.OperationalError("connection refused")
        self.store.probe()

    def close(self) -> None:
        self.store.close()


def break_store(writer: JournalWriter) -> Outage:
    outage = Outage(writer._store)
    writer._store = outage  # type: ignore[assignment]
    return outage


# -- batching and flush -----------------------------------------------------------------


def test_a_full_batch_is_written_without_waiting_for_the_timer(make_writer):
    writer = make_writer(batch_size=10, flush_seconds=60, start=False)
    counter = break_store(writer)
    records = [new_record() for _ in range(25)]
    for rec in records:
        writer.submit(rec)
    writer.start()

    # The timer is a minute away: only the full batches can have woken the writer.
    assert wait_until(lambda: Entry.objects.count() == 25)
    assert counter.batches == [10, 10, 5]
    assert stored_ids() == sorted(rec.request_id for rec in records)
    assert writer.stats.written == 25


def test_a_partial_batch_waits_for_the_timer(make_writer):
    writer = make_writer(batch_size=100, flush_seconds=0.1)
    rec = new_record(model="m-timer")
    writer.submit(rec)
    assert wait_until(lambda: Entry.objects.filter(request_id=rec.request_id).exists())
    entry = Entry.objects.get(request_id=rec.request_id)
    assert (entry.model, entry.status, entry.client_ip) == ("m-timer", 200, "10.0.0.7")


def test_flush_returns_once_everything_submitted_is_stored(make_writer):
    writer = make_writer(batch_size=500, flush_seconds=60)
    records = [new_record() for _ in range(7)]
    for rec in records:
        writer.submit(rec)
    assert writer.flush(WAIT_S)
    # No waiting here: flush promised the rows are in.
    assert stored_ids() == sorted(rec.request_id for rec in records)


def test_stop_stores_what_is_queued(make_writer):
    writer = make_writer(batch_size=500, flush_seconds=60)
    records = [new_record() for _ in range(5)]
    for rec in records:
        writer.submit(rec)
    writer.stop(WAIT_S)
    assert not writer.is_alive()
    assert Entry.objects.count() == 5


# -- overflow ---------------------------------------------------------------------------


def test_a_full_queue_sends_records_to_the_spool_then_to_the_database(make_writer, spool_dir):
    writer = make_writer(queue_size=5, start=False)
    records = [new_record() for _ in range(8)]
    for rec in records:
        writer.submit(rec)

    assert writer.stats.overflowed == 3
    (path,) = spool_files(spool_dir)
    spooled = [orjson.loads(line)["request_id"] for line in path.read_bytes().splitlines()]
    assert spooled == [rec.request_id for rec in records[5:]]

    writer.start()
    assert writer.flush(WAIT_S)
    assert wait_until(lambda: Entry.objects.count() == 8 and not spool_files(spool_dir))
    assert stored_ids() == sorted(rec.request_id for rec in records)


# -- outage and replay ------------------------------------------------------------------


def test_an_outage_spools_batches_and_replays_them_when_the_database_returns(
    make_writer, spool_dir, caplog
):
    caplog.set_level(logging.INFO, logger="kodify.journal")
    writer = make_writer(batch_size=4)
    outage = break_store(writer)
    before = [new_record() for _ in range(3)]
    for rec in before:
        writer.submit(rec)
    assert writer.flush(WAIT_S)

    outage.down = True
    during = [new_record() for _ in range(10)]
    for rec in during:
        writer.submit(rec)
    assert writer.flush(WAIT_S)
    assert writer.down
    assert Entry.objects.count() == 3
    lines = sum(len(path.read_bytes().splitlines()) for path in spool_files(spool_dir))
    assert lines == 10

    outage.down = False
    assert wait_until(lambda: Entry.objects.count() == 13 and not spool_files(spool_dir))
    assert not writer.down
    assert stored_ids() == sorted(rec.request_id for rec in before + during)

    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "unreachable" in warnings[0].getMessage()
    back = [r.getMessage() for r in caplog.records if "is back" in r.getMessage()]
    assert len(back) == 1 and "10 spooled rows" in back[0]
    # Never a record's contents in the log.
    assert not any('"messages"' in r.getMessage() for r in caplog.records)


def test_a_batch_that_committed_before_the_connection_broke_is_not_doubled(make_writer, spool_dir):
    """The acknowledgement of a commit lost: the rows are in, and in the spool too."""
    writer = make_writer(batch_size=10)
    store = writer._store

    class LostAck:
        calls = 0

        def insert(self, rows: list[dict[str, Any]], *, skip_stored: bool) -> None:
            LostAck.calls += 1
            store.insert(rows, skip_stored=skip_stored)
            if LostAck.calls <= 2:  # the write and its immediate retry both "fail"
                raise db.OperationalError("server closed the connection unexpectedly")

        def probe(self) -> None:
            store.probe()

        def close(self) -> None:
            store.close()

    writer._store = LostAck()
    records = [new_record() for _ in range(6)]
    for rec in records:
        writer.submit(rec)
    assert writer.flush(WAIT_S)
    assert wait_until(lambda: not writer.down and not spool_files(spool_dir))
    assert writer.stats.spooled == 6 and writer.stats.replayed == 6
    assert stored_ids() == sorted(rec.request_id for rec in records)


def test_replay_takes_over_dead_processes_files_and_skips_live_ones(
    make_writer, spool_dir, monkeypatch, caplog
):
    caplog.set_level(logging.INFO, logger="kodify.journal")
    monkeypatch.setattr(writer_module, "ORPHAN_SCAN_SECONDS", 0.05)
    dead_rows = [simple_row(new_record()) for _ in range(5)]
    dead = spool_dir / "spool-999999-dead.jsonl"
    # A crash in the middle of a write leaves half a line at the end.
    write_spool_file(dead, dead_rows, tail=b'{"request_id": "torn", "creat')
    live_rows = [simple_row(new_record()) for _ in range(3)]
    live = spool_dir / "spool-1-live.jsonl"
    write_spool_file(live, live_rows)
    # Another process's lock, as far as flock can tell (a separate open file).
    live_fd = os.open(live, os.O_RDONLY)
    fcntl.flock(live_fd, fcntl.LOCK_EX)
    try:
        make_writer()
        assert wait_until(lambda: not dead.exists())
        assert stored_ids() == sorted(row["request_id"] for row in dead_rows)
        assert live.exists()
    finally:
        os.close(live_fd)  # the "process" dies

    assert wait_until(lambda: not live.exists())
    assert stored_ids() == sorted(row["request_id"] for row in dead_rows + live_rows)
    torn = [r.getMessage() for r in caplog.records if "unreadable line" in r.getMessage()]
    assert len(torn) == 1 and "spool-999999-dead.jsonl" in torn[0]


def test_a_spooled_row_that_does_not_decode_is_set_aside(make_writer, spool_dir):
    good = simple_row(new_record())
    bad = {**simple_row(new_record()), "created_at": "yesterday-ish"}
    write_spool_file(spool_dir / "spool-999996-x.jsonl", [bad, good])
    make_writer()
    assert wait_until(lambda: not spool_files(spool_dir))
    assert stored_ids() == [good["request_id"]]
    (rejected,) = spool_dir.glob("rejected-*.jsonl")
    assert orjson.loads(rejected.read_bytes())["row"]["request_id"] == bad["request_id"]


def test_rows_replayed_twice_or_already_stored_are_stored_once(make_writer, spool_dir):
    stored = [new_record() for _ in range(4)]
    first = make_writer()
    for rec in stored:
        first.submit(rec)
    assert first.flush(WAIT_S)
    first.stop(WAIT_S)

    rows = [simple_row(rec) for rec in stored] + [simple_row(new_record()) for _ in range(6)]
    write_spool_file(spool_dir / "spool-999998-a.jsonl", rows)
    write_spool_file(spool_dir / "spool-999997-b.jsonl", rows[::-1])
    make_writer()
    assert wait_until(lambda: not spool_files(spool_dir))
    assert stored_ids() == sorted(row["request_id"] for row in rows)


def test_a_fresh_batch_that_meets_a_stored_request_id_keeps_the_rest(make_writer):
    """COPY fails on the unique request_id; the conflict-ignoring insert stores the rest."""
    writer = make_writer(batch_size=10)
    old = new_record(model="first")
    writer.submit(old)
    assert writer.flush(WAIT_S)

    again = new_record(request_id=old.request_id, model="second")
    others = [new_record() for _ in range(4)]
    for rec in [others[0], again, *others[1:]]:
        writer.submit(rec)
    assert writer.flush(WAIT_S)
    assert stored_ids() == sorted(rec.request_id for rec in [old, *others])
    assert Entry.objects.get(request_id=old.request_id).model == "first"
    assert writer.stats.rejected == 0


# -- refused rows -----------------------------------------------------------------------


def test_a_refused_row_is_set_aside_and_the_rest_of_its_batch_stored(
    make_writer, spool_dir, caplog
):
    writer = make_writer(batch_size=10)
    poison = new_record(error=POISON, request_body=b"secret-prompt-text")
    good = [new_record() for _ in range(4)]
    for rec in [good[0], poison, *good[1:]]:
        writer.submit(rec)
    assert writer.flush(WAIT_S)

    assert stored_ids() == sorted(rec.request_id for rec in good)
    assert writer.stats.rejected == 1 and not writer.down
    (rejected,) = spool_dir.glob("rejected-*.jsonl")
    (line,) = rejected.read_bytes().splitlines()
    entry = orjson.loads(line)
    assert entry["row"]["request_id"] == poison.request_id
    assert "IntegrityError" in entry["error"] or "NotNull" in entry["error"]
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "1 row(s) refused" in messages and "secret-prompt-text" not in messages

    # The journal goes on.
    later = new_record()
    writer.submit(later)
    assert writer.flush(WAIT_S)
    assert Entry.objects.filter(request_id=later.request_id).exists()


def test_a_record_that_cannot_become_a_row_is_set_aside(make_writer, spool_dir):
    def failing_row(rec: Record) -> dict[str, Any]:
        if rec.model == "broken":
            raise ValueError("cannot decode")
        return simple_row(rec)

    writer = make_writer(build_row=failing_row)
    ok, broken = new_record(), new_record(model="broken", request_body=b"\xff\xfe")
    writer.submit(broken)
    writer.submit(ok)
    assert writer.flush(WAIT_S)
    assert stored_ids() == [ok.request_id]
    (rejected,) = spool_dir.glob("rejected-*.jsonl")
    entry = orjson.loads(rejected.read_bytes())
    assert entry["record"]["request_id"] == broken.request_id
    assert entry["error"].startswith("ValueError")


# -- the live view ----------------------------------------------------------------------


def test_each_stored_batch_is_published_on_the_recorders_loop(make_writer, monkeypatch):
    published: list[tuple[list[str], threading.Thread]] = []
    arrived = threading.Event()

    async def broadcast(rows: list[dict[str, Any]]) -> None:
        published.append(([row["request_id"] for row in rows], threading.current_thread()))
        arrived.set()

    live = SimpleNamespace(summarize=dict, broadcast_summaries=broadcast)
    monkeypatch.setattr(live_publish, "live_view", lambda: live)
    loop = asyncio.new_event_loop()
    loop_thread = threading.Thread(target=loop.run_forever, daemon=True)
    loop_thread.start()
    try:
        writer = make_writer(loop=loop)
        records = [new_record() for _ in range(3)]
        for rec in records:
            writer.submit(rec)
        assert writer.flush(WAIT_S)
        assert arrived.wait(WAIT_S)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        loop_thread.join(WAIT_S)
        loop.close()
    assert published == [([rec.request_id for rec in records], loop_thread)]


def test_a_failing_live_view_does_not_stop_the_journal(make_writer, monkeypatch, caplog):
    async def broadcast(rows: list[dict[str, Any]]) -> None:
        raise RuntimeError("channel layer down")

    live = SimpleNamespace(summarize=dict, broadcast_summaries=broadcast)
    monkeypatch.setattr(live_publish, "live_view", lambda: live)
    loop = asyncio.new_event_loop()
    loop_thread = threading.Thread(target=loop.run_forever, daemon=True)
    loop_thread.start()
    try:
        writer = make_writer(loop=loop)
        for _ in range(2):
            writer.submit(new_record())
            assert writer.flush(WAIT_S)
        assert wait_until(lambda: caplog.text.count("channel layer down") == 2)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        loop_thread.join(WAIT_S)
        loop.close()
    assert Entry.objects.count() == 2


# -- the spool file itself ----------------------------------------------------------------


def test_spool_round_trips_rows_and_resumes_where_replay_stopped(tmp_path):
    spool = Spool(tmp_path)
    rows = [{"request_id": str(n), "created_at": "2026-01-02T03:04:05+00:00"} for n in range(5)]
    assert spool.append(rows[:3]) == 3
    assert spool.append(rows[3:], sync=False) == 2
    spool.seal()
    (sealed,) = spool.sealed()

    batches = spool.batches(sealed, 2)
    first, end = next(batches)
    assert first == rows[:2]
    sealed.offset = end
    batches.close()  # cut short, as an outage would

    rest = [row for batch, _ in spool.batches(sealed, 2) for row in batch]
    assert rest == rows[2:]
    spool.discard(sealed)
    assert list(tmp_path.iterdir()) == []


def test_a_live_writers_file_is_not_adopted_by_another(tmp_path):
    mine, other = Spool(tmp_path), Spool(tmp_path)
    mine.append([{"request_id": "a"}])
    abandoned = tmp_path / ".creating-123-abc.jsonl"  # its process died before naming it
    abandoned.touch()
    assert other.adopt_orphans() == 0
    assert not abandoned.exists()
    mine.close()  # its process ends: the lock goes, the rows stay
    assert other.adopt_orphans() == 1
    (adopted,) = other.sealed()
    assert [row for batch, _ in other.batches(adopted, 10) for row in batch] == [
        {"request_id": "a"}
    ]


# -- the recorder -------------------------------------------------------------------------


@pytest.fixture
def journal_settings(settings, spool_dir, monkeypatch) -> Iterator[Any]:
    monkeypatch.setattr(converter_module, "_default_build_row", lambda: simple_row)
    settings.LOGS = True
    # In this process, with the simple converter: the helper process has its own tests.
    settings.KODIFY_JOURNAL_CONVERTER = "thread"
    settings.KODIFY_JOURNAL_SPOOL_DIR = spool_dir
    settings.KODIFY_JOURNAL_FLUSH_SECONDS = 0.05
    recorder.reset_for_tests()
    yield settings
    recorder.reset_for_tests()


def test_record_does_nothing_when_the_journal_is_off(settings):
    settings.LOGS = False
    recorder.reset_for_tests()
    recorder.record(new_record())
    assert not recorder.journal_on()
    assert recorder.current_writer() is None
    assert recorder.flush(1.0)


def test_record_starts_a_writer_per_process_and_flush_stores(journal_settings, monkeypatch):
    rec = new_record()
    recorder.record(rec)
    first = recorder.current_writer()
    assert first is not None and first.is_alive()
    assert recorder.flush(WAIT_S)
    assert stored_ids() == [rec.request_id]

    # A forked worker inherits the module's state but not the thread: the writer on
    # record belongs to another process id.
    monkeypatch.setattr(recorder, "_writer_pid", os.getpid() + 1_000_000)
    assert recorder.current_writer() is None
    child = new_record()
    recorder.record(child)
    second = recorder.current_writer()
    assert second is not None and second is not first and second.is_alive()
    assert recorder.flush(WAIT_S)
    assert stored_ids() == sorted([rec.request_id, child.request_id])
    first.stop(WAIT_S)


async def test_record_in_the_event_loop_captures_it_and_aflush_works(journal_settings):
    rec = new_record()
    recorder.record(rec)
    writer = recorder.current_writer()
    assert writer is not None
    assert writer.loop is asyncio.get_running_loop()
    assert await recorder.aflush(WAIT_S)

    def count() -> int:
        try:
            return Entry.objects.filter(request_id=rec.request_id).count()
        finally:
            db.connections.close_all()  # this worker thread's; the test database is dropped

    assert await asyncio.to_thread(count) == 1


def test_record_never_raises(journal_settings, monkeypatch, caplog):
    recorder.record(new_record())
    writer = recorder.current_writer()
    assert writer is not None

    def explode(rec: Record) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(writer, "submit", explode)
    recorder.record(new_record())  # no exception
    assert "could not be recorded" in caplog.text


def test_shutdown_spools_what_a_stuck_writer_could_not_store(journal_settings, spool_dir):
    recorder.record(new_record())
    writer = recorder.current_writer()
    assert writer is not None
    assert recorder.flush(WAIT_S)
    release = threading.Event()
    entered = threading.Event()
    store = writer._store

    class Hung:
        def insert(self, rows: list[dict[str, Any]], *, skip_stored: bool) -> None:
            entered.set()
            release.wait(WAIT_S)
            store.insert(rows, skip_stored=skip_stored)

        def probe(self) -> None:
            store.probe()

        def close(self) -> None:
            store.close()

    writer._store = Hung()  # type: ignore[assignment]
    in_flight = new_record()
    recorder.record(in_flight)
    assert entered.wait(WAIT_S)  # the writer now hangs on the database
    queued = [new_record() for _ in range(3)]
    for rec in queued:
        recorder.record(rec)
    recorder.shutdown(timeout=0.2)
    spooled = {
        orjson.loads(line)["request_id"]
        for path in spool_files(spool_dir)
        for line in path.read_bytes().splitlines()
    }
    assert spooled == {rec.request_id for rec in queued}
    release.set()
    writer.join(WAIT_S)
    assert not writer.is_alive()
