"""A worker killed with records in memory loses none of them (``journal/handoff.py``), its
helper process dies with it (``journal/converter.py``), and catching up never hogs the
writer's thread (``journal/replay.py``)."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from journal import replay
from journal import writer as writer_module
from journal.handoff import HANDOFF_SUBDIR, HandoffLog, encode
from journal.models import Entry
from journal.record import Record
from journal.tests.test_writer import (
    new_record,
    simple_row,
    spool_files,
    stored_ids,
    wait_until,
    write_spool_file,
    writers,
)
from journal.writer import JournalWriter
from kodify_site.testing import REPO, WAIT_S, server_environment

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def spool_dir(tmp_path: Path) -> Path:
    return tmp_path / "spool"


@pytest.fixture
def make_writer(spool_dir: Path) -> Iterator[Callable[..., JournalWriter]]:
    with writers(spool_dir, flush_seconds=0.05) as factory:
        yield factory


def streamed_record(**fields: Any) -> Record:
    return new_record(
        stream=True,
        request_body=b'{"messages": [{"role": "user", "content": "' + b"x" * 3000 + b'"}]}',
        response_chunks=[b'data: {"choices": [{"delta": {"content": "tok"}}]}\n\n'] * 20,
        first_byte_at=10.5,
        finished_at=11.0,
        started=10.0,
        **fields,
    )


def log_files(spool: Path) -> list[Path]:
    return sorted((spool / HANDOFF_SUBDIR).glob("wal-*.log"))


def records_in(directory: Path) -> int:
    """Records in hand-off files nobody holds (read back as an adopter would)."""
    reader = HandoffLog(directory)
    reader.adopt_orphans()
    count = 0
    for log in reader.adopted():
        records, _, _ = reader.read(log, 1_000_000)
        count += len(records)
    reader.close()
    return count


# -- the file format -------------------------------------------------------------------


@pytest.mark.smoke
def test_a_record_reads_back_as_it_was_handed_over_and_a_torn_tail_is_skipped(tmp_path):
    log = HandoffLog(tmp_path)
    pending: deque[Any] = deque()
    records = [streamed_record(), new_record(client_ip=None, user_id=None), streamed_record()]
    for rec in records:
        log.append(rec, pending)
    assert list(pending) == records
    (path,) = tmp_path.glob("wal-*.log")
    whole = path.stat().st_size
    log.close()  # the process dies: its lock goes, the file stays
    # A kill in the middle of the last write leaves part of its frame.
    os.truncate(path, whole - 100)

    reader = HandoffLog(tmp_path)
    assert reader.adopt_orphans() == 1
    (adopted,) = reader.adopted()
    first, end, finished = reader.read(adopted, 1)
    assert not finished and len(first) == 1
    adopted.offset = end
    rest, _, finished = reader.read(adopted, 100)
    assert finished
    back = first + rest
    assert [r.request_id for r in back] == [r.request_id for r in records[:2]]
    original = records[0]
    assert back[0].request_body == original.request_body
    assert back[0].response_chunks == [b"".join(original.response_chunks)]
    assert (back[0].started, back[0].first_byte_at, back[0].finished_at) == (10.0, 10.5, 11.0)
    assert back[0].stream and back[1].client_ip is None and back[1].response_chunks == []
    assert adopted.skipped > 0
    reader.discard(adopted)
    assert not path.exists()


@pytest.mark.smoke
def test_a_file_of_zeros_or_garbage_reads_as_no_records(tmp_path):
    log = HandoffLog(tmp_path)
    log.append(new_record(), deque())
    (path,) = tmp_path.glob("wal-*.log")
    log.close()
    with open(path, "ab") as handle:  # what a power loss can leave: zeros past the end
        handle.write(b"\0" * 4096)
    (tmp_path / "wal-1-garbage.log").write_bytes(b"not a hand-off log\n" + b"\xff" * 50)
    reader = HandoffLog(tmp_path)
    assert reader.adopt_orphans() == 2
    counts = sorted(len(reader.read(log, 100)[0]) for log in reader.adopted())
    assert counts == [0, 1]
    reader.close()


def test_a_cut_holds_exactly_the_records_taken_from_the_queue(tmp_path):
    log = HandoffLog(tmp_path)
    pending: deque[Any] = deque()
    first = [new_record() for _ in range(3)]
    for rec in first:
        log.append(rec, pending)
    count, cut = log.cut(pending)
    later = new_record()
    log.append(later, pending)  # after the cut: the next file
    assert count == 3 and cut is not None
    reader = HandoffLog(tmp_path)
    records, _, _ = reader.read(cut, 100)
    assert [r.request_id for r in records] == [r.request_id for r in first]
    log.done(cut)
    assert not cut.path.exists()
    log.close()  # the later record's file stays, for adoption
    assert records_in(tmp_path) == 1


def test_the_encoding_is_cheap_enough_to_run_per_request():
    """Not a timing: the frame is the record's own bytes plus a short header."""
    rec = streamed_record()
    frame = encode(rec)
    answer = b"".join(rec.response_chunks)
    assert frame[2:] == [rec.request_body, answer]
    assert len(frame[0]) + len(frame[1]) < 400


# -- recovery by the writer ------------------------------------------------------------


def test_records_in_memory_when_a_process_dies_reach_the_journal_once(make_writer, spool_dir):
    """A writer whose thread never stored anything (as if killed), one record of which
    was stored by someone already: the next writer stores the rest, none twice."""
    dead = make_writer(start=False)
    records = [streamed_record() for _ in range(250)]
    for rec in records:
        dead.submit(rec)
    dead.handoff.close()  # what the kernel does with a killed process's locks
    dead._pending.clear()  # its memory is gone
    stored_before = make_writer()
    stored_before.submit(records[7])
    assert stored_before.flush(WAIT_S)

    writer = make_writer(batch_size=40)
    assert wait_until(lambda: Entry.objects.count() == 250 and not spool_files(spool_dir))
    assert stored_ids() == sorted(rec.request_id for rec in records)
    assert writer.stats.recovered + stored_before.stats.recovered == 250
    assert wait_until(lambda: records_in(spool_dir / HANDOFF_SUBDIR) == 0)


def test_a_writer_deletes_each_part_of_its_log_once_stored(make_writer, spool_dir):
    writer = make_writer(batch_size=10)
    for _ in range(25):
        writer.submit(new_record())
    assert writer.flush(WAIT_S)
    assert Entry.objects.count() == 25
    # Only the file taking the next appends is left, and it holds no record.
    writer.stop(WAIT_S)
    assert records_in(spool_dir / HANDOFF_SUBDIR) == 0 and log_files(spool_dir) == []


_KILLED_WORKER = """
import os, sys, uuid, django
django.setup()
from journal.record import Record
from journal.writer import JournalWriter
from journal.writer import JournalWriter

writer = JournalWriter(spool_dir=sys.argv[1])  # its thread never starts: nothing stored
for n in range(int(sys.argv[2])):
    writer.submit(Record(request_id=f"killed-{n:04d}", endpoint="/v1/completions",
                         feature="completions", status=200, request_body=b"{}"))
print("handed over", flush=True)
sys.stdin.read()
"""


def test_a_process_killed_with_records_in_memory_loses_none(make_writer, spool_dir, tmp_path):
    env = server_environment(tmp_path, {"DJANGO_SETTINGS_MODULE": "kodify_site.settings"})
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(_KILLED_WORKER), str(spool_dir), "120"],
        cwd=REPO,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "handed over"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(WAIT_S)
    make_writer()
    expected = [f"killed-{n:04d}" for n in range(120)]
    assert wait_until(lambda: stored_ids() == expected)


# -- the helper process dies with its server process --------------------------------------

_HELPER_PARENT = """
import os, sys, django
django.setup()
from journal.converter import ProcessConverter
from journal.record import Record
from journal.writer import JournalWriter

converter = ProcessConverter()
assert converter.convert([Record(request_id="x", endpoint="/v1/completions",
                                 feature="completions")]) is not None
(helper,) = converter._pool._processes  # started by the first batch
print(helper, flush=True)
sys.stdin.read()
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.smoke
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("end", ["parent killed", "helper terminated"])
def test_the_helper_process_never_outlives_its_server_process(tmp_path, end):
    env = server_environment(tmp_path, {"DJANGO_SETTINGS_MODULE": "kodify_site.settings"})
    env.pop("DB_URL", None)
    parent = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(_HELPER_PARENT)],
        cwd=REPO,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert parent.stdout is not None
        helper = int(parent.stdout.readline())
        assert _alive(helper)
        if end == "parent killed":
            parent.send_signal(signal.SIGKILL)
        else:
            os.kill(helper, signal.SIGTERM)
        assert wait_until(lambda: not _alive(helper))
    finally:
        parent.kill()
        parent.wait(WAIT_S)
    if _alive(helper):
        os.kill(helper, signal.SIGKILL)


# -- catching up is paced, in the writer's thread ------------------------------------------


def test_replay_goes_in_bounded_batches_with_a_rest_off_the_calling_thread(
    make_writer, spool_dir, monkeypatch
):
    monkeypatch.setattr(writer_module, "REPLAY_BATCH_ROWS", 50)
    monkeypatch.setattr(replay, "REPLAY_PAUSE_MIN_SECONDS", 0.02)
    rows = [simple_row(new_record()) for _ in range(600)]
    write_spool_file(spool_dir / "spool-999990-big.jsonl", rows)
    calls: list[tuple[int, int, float]] = []
    original = replay.CatchingUp._replay_rows_batch

    def spy(self: Any, batch: list[dict[str, Any]]) -> BaseException | None:
        import time

        calls.append((threading.get_ident(), len(batch), time.monotonic()))
        return original(self, batch)

    monkeypatch.setattr(replay.CatchingUp, "_replay_rows_batch", spy)
    writer = make_writer(batch_size=500)
    assert wait_until(lambda: Entry.objects.count() == 600 and not spool_files(spool_dir))

    assert {thread for thread, _, _ in calls} == {writer.ident}
    assert threading.get_ident() != writer.ident
    assert max(size for _, size, _ in calls) <= 50 and len(calls) == 12
    # Each batch after a rest of at least the minimum (waits only ever last longer).
    gaps = [later - earlier for (_, _, earlier), (_, _, later) in itertools.pairwise(calls)]
    assert min(gaps) >= 0.02
    assert writer.stats.replay_steps >= 12
