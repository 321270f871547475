"""The journal's background writer: records in, batches of rows into the database.

The request path only appends a record to an in-memory queue (:meth:`JournalWriter.submit`);
this thread turns records into rows (``journal.rows.build_row``) and stores them a batch
at a time.  The queue is a ``deque`` rather than a ``queue.Queue``: ``Queue.put`` takes a
lock and wakes a waiting consumer on every record, which at thousands of requests a
second would pull this thread onto the GIL once per request.  Here the thread wakes once
per ``KODIFY_JOURNAL_FLUSH_SECONDS`` or once per full batch.  The queue is bounded: past
``KODIFY_JOURNAL_QUEUE_SIZE`` records go to the spool file at once (nothing is dropped).

When the database is unreachable, batches go to the spool (``journal/spool.py``) and the
thread probes the database with a growing pause; once it answers, every spool file
(ours and those of dead processes) is replayed with conflict-ignoring inserts, which is
why a batch that committed but whose acknowledgement was lost is never stored twice.
A row the database refuses (too long, not null…) is set aside in ``rejected-<pid>.jsonl``
so that it cannot hold the rest of the journal back.

Tabby's completion events (:class:`~journal.record.EventRecord`) travel in the same queue
and are stored by this thread too, with the ORM (a few per completion: not worth COPY or
the helper process), in the turn that stores the requests queued beside them, so
``flush`` covers them.  What is guaranteed for them:

* A full queue drops them (counted in ``stats.events_dropped``, a warning at most once
  a minute); requests are spooled instead.  An event is worth less than a request, and
  spooling costs a disk write on the event loop.
* Once queued, an outage does not lose them: they wait in a spool of their own
  (``<spool>/events/``, same files, locks and adoption of dead processes' files as the
  requests'), replayed when the database returns.  A process killed before its queue
  reaches the spool loses that queue, as it does for requests.
* Replay skips events already stored, recognised by (time to the microsecond, kind,
  response id, choice), so a batch whose commit was acknowledged too late is not stored
  twice.  Events have no unique key in the table: the same event sent twice by a client
  is stored twice (the dashboards count distinct completions, so it moves no number).
* An event the database refuses is set aside in ``rejected-<pid>.jsonl`` like a row.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import orjson
import psycopg
from django import db
from django.conf import settings
from django.core.management import call_command
from django.db import connections, transaction

from journal.clients import parse_user_agent
from journal.converter import Converted, ProcessConverter
from journal.record import EventRecord, Record
from journal.router import JOURNAL_ALIAS, journal_database
from journal.spool import Row, Spool, append_lines

logger = logging.getLogger("kodify.journal")

PROBE_FIRST_SECONDS = 0.5
PROBE_MAX_SECONDS = 10.0
# Other processes' spool files appear when a worker dies; a new worker adopts them at
# start, and every writer looks again this often.
ORPHAN_SCAN_SECONDS = 30.0
# Batches replayed between two looks at the queue, so fresh records keep flowing while
# a long outage's spool drains.
REPLAY_BATCHES_PER_TURN = 20
TABLE = "journal_entry"
EVENT_SPOOL_SUBDIR = "events"
# A full queue drops events; saying so once a minute is enough to be noticed.
EVENT_DROP_WARNING_SECONDS = 60.0
# Tabby's payload is a few short fields; the rest of a larger one is not kept.
EVENT_PAYLOAD_MAX_BYTES = 4096
EVENT_PAYLOAD_MAX_FIELDS = 32
EVENT_PAYLOAD_MAX_TEXT = 256

# Errors that mean "the database is not there (or not ready)", not "this row is bad":
# the rows wait in the spool.  Besides lost connections: no such database, table or
# column yet (a journal database created after the server started), refused login.
_UNAVAILABLE_SQLSTATES = frozenset({"3D000", "42P01", "42703", "42501", "28000", "28P01"})
_UNAVAILABLE_TYPES = (
    db.OperationalError,
    db.InterfaceError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
)

BuildRow = Callable[[Record], Row]


class _Flush:
    """A marker in the queue: set once everything queued before it is stored."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


_STOP = object()


@dataclass
class WriterStats:
    written: int = 0  # rows inserted from the queue
    spooled: int = 0  # rows sent to the spool (outage or overflow)
    replayed: int = 0  # spooled rows sent to the database again
    rejected: int = 0  # rows the database refused, set aside
    overflowed: int = 0  # records that found the queue full
    events_written: int = 0  # completion events inserted from the queue
    events_spooled: int = 0
    events_replayed: int = 0
    events_dropped: int = 0  # events that found the queue full


class JournalWriter(threading.Thread):
    """One per process (see ``journal/recorder.py``); settings are read on creation."""

    def __init__(
        self,
        *,
        alias: str | None = None,
        queue_size: int | None = None,
        batch_size: int | None = None,
        flush_seconds: float | None = None,
        spool_dir: Path | None = None,
        build_row: BuildRow | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(name="kodify-journal-writer", daemon=True)
        self.alias = alias or journal_database()
        self.queue_size = queue_size or settings.KODIFY_JOURNAL_QUEUE_SIZE
        self.batch_size = batch_size or settings.KODIFY_JOURNAL_BATCH_SIZE
        self.flush_seconds = flush_seconds or settings.KODIFY_JOURNAL_FLUSH_SECONDS
        self.spool = Spool(spool_dir or settings.KODIFY_JOURNAL_SPOOL_DIR)
        # A folder of its own: a writer of an older version, adopting a dead process's
        # files, must not take events for requests.
        self.event_spool = Spool(self.spool.directory / EVENT_SPOOL_SUBDIR)
        self.loop = loop  # where the live view runs; set by the recorder
        self.stats = WriterStats()
        self.down = False
        self._build_row = build_row
        self._converter = (
            ProcessConverter()
            if build_row is None and settings.KODIFY_JOURNAL_CONVERTER == "process"
            else None
        )
        self._pending: deque[Any] = deque()
        self._wake = threading.Event()
        self._overflowing = False
        self._stop_requested = False
        self._store = store_for(self.alias)
        self._event_store = _EventStore(self.alias)
        self._next_drop_warning = 0.0
        self._down_since = 0.0
        self._outage_rows = 0
        self._backoff = PROBE_FIRST_SECONDS
        self._next_probe = 0.0
        self._next_orphan_scan = 0.0
        self._replayed: dict[str, int] = {}  # rows replayed per spool, for the log

    # -- the request side --------------------------------------------------------------

    def submit(self, rec: Record) -> None:
        """Queue a record; never blocks on the database (see the module's docstring)."""
        pending = self._pending
        if len(pending) >= self.queue_size:
            self._overflow(rec)
            return
        pending.append(rec)
        if len(pending) >= self.batch_size and not self._wake.is_set():
            self._wake.set()

    def submit_event(self, event: EventRecord) -> None:
        """Queue a completion event; never blocks, drops it when the queue is full."""
        pending = self._pending
        if len(pending) >= self.queue_size:
            self._drop_event()
            return
        pending.append(event)
        if len(pending) >= self.batch_size and not self._wake.is_set():
            self._wake.set()

    def _drop_event(self) -> None:
        self.stats.events_dropped += 1
        now = time.monotonic()
        if now >= self._next_drop_warning:
            self._next_drop_warning = now + EVENT_DROP_WARNING_SECONDS
            logger.warning(
                "Journal writer is behind (%d records queued): completion events are "
                "dropped until it catches up (%d so far).",
                len(self._pending),
                self.stats.events_dropped,
            )

    def _overflow(self, rec: Record) -> None:
        if not self._overflowing:
            self._overflowing = True
            logger.warning(
                "Journal writer is behind (%d records queued); new records go to the "
                "spool until it catches up.",
                len(self._pending),
            )
        self.stats.overflowed += 1
        self._spool(self._convert([rec], inline=True), sync=False)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every record submitted so far is in the database or the spool."""
        if not self.is_alive():
            self._spool_pending()
            return True
        marker = _Flush()
        self._pending.append(marker)
        self._wake.set()
        return marker.done.wait(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        """Store what is queued and end the thread; what it cannot store is spooled."""
        self._stop_requested = True  # _spool_pending below may take the marker
        if self.is_alive():
            self._pending.append(_STOP)
            self._wake.set()
            self.join(timeout)
        if self.is_alive():
            # Stuck on a database that does not answer: keep the queue on disk at least.
            logger.warning("Journal writer did not stop in %.1f s; spooling its queue.", timeout)
        self._spool_pending()
        if not self.is_alive():
            # The thread closed them already, unless it never started.
            self.spool.close()
            self.event_spool.close()

    def _spool_pending(self) -> None:
        records: list[Record] = []
        events: list[EventRecord] = []
        flushes: list[_Flush] = []
        while True:
            try:
                item = self._pending.popleft()
            except IndexError:
                break
            if isinstance(item, Record):
                records.append(item)
            elif isinstance(item, EventRecord):
                events.append(item)
            elif isinstance(item, _Flush):
                flushes.append(item)
        if records:
            self._spool(self._convert(records), sync=True)
        if events:
            self._spool_events(self._event_rows(events))
        for flush in flushes:
            flush.done.set()

    # -- the thread ----------------------------------------------------------------------

    def run(self) -> None:
        try:
            self._next_orphan_scan = time.monotonic()
            while True:
                self._wake.wait(self.flush_seconds)
                self._wake.clear()
                try:
                    if self._turn():
                        return
                except Exception:
                    # A bug here must not end the journal: the next turn tries again.
                    logger.exception("Journal writer: unexpected error")
        finally:
            self._close()

    def _turn(self) -> bool:
        """One pass: store what is queued, then probe or replay; True when told to stop."""
        items: list[Any] = []
        pending = self._pending
        for _ in range(len(pending)):
            items.append(pending.popleft())
        records = [item for item in items if isinstance(item, Record)]
        events = [item for item in items if isinstance(item, EventRecord)]
        stop = self._stop_requested or any(item is _STOP for item in items)
        done = 0
        events_done = not events
        try:
            while done < len(records):
                self._store_batch(records[done : done + self.batch_size])
                done += self.batch_size
            if events:
                self._store_events(events)
                events_done = True
        except BaseException:
            # What was not stored yet must not vanish with the error.  Events stored in
            # part are spooled whole: their replay skips the stored ones.
            self._spool(self._convert(records[done:]), sync=True)
            if not events_done:
                self._spool_events(self._event_rows(events))
            raise
        finally:
            self.spool.sync()  # the event loop's overflow appends
            if self._overflowing and len(pending) < self.queue_size // 2:
                self._overflowing = False
        self._maintain(stopping=stop)
        for item in items:
            if isinstance(item, _Flush):
                item.done.set()
        return stop

    def _store_batch(self, records: list[Record]) -> None:
        """Records into the journal: through the helper process when there is one and the
        database is up; what the helper could not store is handled here."""
        stored = None
        if self._converter is not None and not self.down:
            stored = self._converter.store(records, self.alias)
        if stored is None:
            self._write(self._convert(records))
            return
        if stored.failed:
            self._reject(
                [
                    {"error": error, "record": _record_fields(records[i])}
                    for i, error in stored.failed
                ]
            )
        if stored.outcome == "stored":
            self.stats.written += len(stored.rows)
            self._publish_summaries(stored.rows)
        elif stored.outcome == "unavailable":
            self._go_down(HelperReport(stored.error))
            self._spool(stored.rows, sync=True)
        else:  # refused (row by row here) or a database only this process knows
            self._write(stored.rows)

    def _write(self, rows: list[Row]) -> None:
        if not rows:
            return
        if self.down:
            self._spool(rows, sync=True)
            return
        error = self._insert(rows, ignore_conflicts=False)
        if error is not None:
            self._go_down(error)
            self._spool(rows, sync=True)
            return
        self.stats.written += len(rows)
        self._publish(rows)

    def _store_events(self, events: list[EventRecord]) -> None:
        rows = self._event_rows(events)
        for start in range(0, len(rows), self.batch_size):
            batch = rows[start : start + self.batch_size]
            if self.down:
                self._spool_events(batch)
                continue
            error = self._insert_events(batch, skip_stored=False)
            if error is not None:
                self._go_down(error)
                self._spool_events(batch)
                continue
            self.stats.events_written += len(batch)

    def _maintain(self, *, stopping: bool) -> None:
        now = time.monotonic()
        if self.down:
            if stopping or now < self._next_probe:
                return
            if not self._probe():
                self._backoff = min(self._backoff * 2, PROBE_MAX_SECONDS)
                self._next_probe = now + self._backoff
                return
            self.down = False
            logger.info(
                "Journal database is back after %.1f s; replaying %d spooled rows.",
                now - self._down_since,
                self._outage_rows,
            )
            self._outage_rows = 0
            self._next_orphan_scan = now
        for spool in (self.spool, self.event_spool):
            if spool.has_unsealed():
                spool.seal()
        if now >= self._next_orphan_scan:
            self._next_orphan_scan = now + ORPHAN_SCAN_SECONDS
            self.spool.adopt_orphans()
            self.event_spool.adopt_orphans()
        if not self._replay_some() and not stopping:
            self._wake.set()  # more to replay: come back without waiting

    def _replay_some(self) -> bool:
        """Replay up to a budget of spooled batches, requests first; True when both
        spools are drained (or the database went away again)."""
        budget = [REPLAY_BATCHES_PER_TURN]
        if not self._replay(self.spool, self._replay_rows_batch, "rows", budget):
            return False
        if self.down:
            return True
        return self._replay(self.event_spool, self._replay_events_batch, "events", budget)

    def _replay(
        self,
        spool: Spool,
        insert: Callable[[list[Row]], BaseException | None],
        what: str,
        budget: list[int],
    ) -> bool:
        """Replay ``spool`` while ``budget[0]`` lasts; True when drained or down again."""
        for spool_file in spool.sealed():
            try:
                for rows, end in spool.batches(spool_file, self.batch_size):
                    if budget[0] == 0:
                        return False
                    if rows:
                        error = insert(rows)
                        if error is not None:
                            self._go_down(error)
                            return True
                        self._replayed[what] = self._replayed.get(what, 0) + len(rows)
                        budget[0] -= 1
                    spool_file.offset = end
            except OSError as exc:
                # Left for a later writer (it is unlocked now) rather than retried each turn.
                logger.error("Journal spool %s unreadable: %s", spool_file.path, exc.strerror)
                spool.release(spool_file)
                continue
            spool.discard(spool_file)
            if not spool.sealed():
                logger.info("Journal spool replayed: %d %s.", self._replayed.pop(what, 0), what)
        return True

    def _replay_rows_batch(self, rows: list[Row]) -> BaseException | None:
        error = self._insert(self._decode(rows), ignore_conflicts=True)
        if error is None:
            self.stats.replayed += len(rows)
        return error

    def _replay_events_batch(self, rows: list[Row]) -> BaseException | None:
        error = self._insert_events(self._decode_events(rows), skip_stored=True)
        if error is None:
            self.stats.events_replayed += len(rows)
        return error

    # -- the database -------------------------------------------------------------------

    def _insert(self, rows: list[Row], *, ignore_conflicts: bool) -> BaseException | None:
        """Store a batch; returns the error when the database is unavailable.

        Refused rows do not count as an error: they are set aside (see ``_isolate``).
        """
        try:
            self._store.insert(rows, ignore_conflicts=ignore_conflicts)
            return None
        except Exception as exc:
            if is_duplicate(exc) and not ignore_conflicts:
                # A request id already stored (rows sent again after a lost
                # acknowledgement): the conflict-ignoring insert stores the others.
                return self._insert(rows, ignore_conflicts=True)
            if not is_unavailable(exc):
                return self._isolate(rows)
            self._store.close()
            first = exc
        # A connection that went stale (a restarted server, an idle timeout) fails once
        # and then works: one more try on a fresh one before declaring an outage.  The
        # failed try may have committed, hence conflict-ignoring.
        try:
            self._store.insert(rows, ignore_conflicts=True)
            return None
        except Exception as exc:
            if is_unavailable(exc):
                self._store.close()
                return first
            return self._isolate(rows)

    def _isolate(self, rows: list[Row]) -> BaseException | None:
        """A batch the database refused: store row by row, set aside the refused ones."""
        rejected: list[Row] = []
        for row in rows:
            try:
                self._store.insert([row], ignore_conflicts=True)
            except Exception as exc:
                if is_unavailable(exc):
                    self._store.close()
                    return exc
                rejected.append({"error": describe(exc), "row": row})
        if rejected:
            self._reject(rejected)
        return None

    def _insert_events(self, rows: list[Row], *, skip_stored: bool) -> BaseException | None:
        """:meth:`_insert` for events: the error when the database is unavailable."""
        if not rows:
            return None
        store = self._event_store
        try:
            store.insert(rows, skip_stored=skip_stored)
            return None
        except Exception as exc:
            if not is_unavailable(exc):
                return self._isolate_events(rows)
            store.close()
            first = exc
        # As in _insert: one more try on a fresh connection, skipping what the failed
        # try may have committed.
        try:
            store.insert(rows, skip_stored=True)
            return None
        except Exception as exc:
            if is_unavailable(exc):
                store.close()
                return first
            return self._isolate_events(rows)

    def _isolate_events(self, rows: list[Row]) -> BaseException | None:
        rejected: list[Row] = []
        for row in rows:
            try:
                self._event_store.insert([row], skip_stored=True)
            except Exception as exc:
                if is_unavailable(exc):
                    self._event_store.close()
                    return exc
                rejected.append({"error": describe(exc), "event": row})
        if rejected:
            self._reject(rejected)
        return None

    def _probe(self) -> bool:
        try:
            self._store.probe()
            return True
        except Exception:
            self._store.close()
            return False

    def _go_down(self, error: BaseException) -> None:
        if self.down:
            return
        self.down = True
        self._down_since = time.monotonic()
        self._backoff = PROBE_FIRST_SECONDS
        self._next_probe = self._down_since + self._backoff
        logger.warning(
            "Journal database unreachable (%s); records wait in %s until it returns.",
            describe(error),
            self.spool.directory,
        )

    # -- rows, spool, live view ---------------------------------------------------------

    def _convert(self, records: Sequence[Record], *, inline: bool = False) -> list[Row]:
        """Rows of ``records``; in the helper process unless ``inline`` (the caller may be
        the event loop) or a converter of the caller's own was given."""
        if self._converter is not None and not inline and records:
            converted = self._converter.convert(list(records))
            if converted is not None:
                return self._converted(records, converted)
        rows: list[Row] = []
        failed: list[Row] = []
        try:
            build_row = self._build_row or _default_build_row()
        except Exception as exc:  # journal/rows.py broken: keep the raw records at least
            build_row = _failing(exc)
        for rec in records:
            try:
                rows.append(build_row(rec))
            except Exception as exc:
                failed.append({"error": describe(exc), "record": _record_fields(rec)})
        if failed:
            self._reject(failed)
        return rows

    def _converted(self, records: Sequence[Record], converted: list[Converted]) -> list[Row]:
        rows: list[Row] = []
        failed: list[Row] = []
        for rec, (ok, result) in zip(records, converted, strict=True):
            if ok:
                rows.append(result)
            else:
                failed.append({"error": result, "record": _record_fields(rec)})
        if failed:
            self._reject(failed)
        return rows

    def _event_rows(self, events: Sequence[EventRecord]) -> list[Row]:
        rows: list[Row] = []
        failed: list[Row] = []
        for event in events:
            try:
                rows.append(event_row(event))
            except Exception as exc:
                failed.append({"error": describe(exc), "event": asdict(event)})
        if failed:
            self._reject(failed)
        return rows

    def _decode_events(self, rows: list[Row]) -> list[Row]:
        decoded: list[Row] = []
        failed: list[Row] = []
        for row in rows:
            try:
                created_at = row.get("created_at")
                if isinstance(created_at, str):
                    row["created_at"] = datetime.fromisoformat(created_at)
                decoded.append(row)
            except (TypeError, ValueError) as exc:
                failed.append({"error": describe(exc), "event": row})
        if failed:
            self._reject(failed)
        return decoded

    def _spool_events(self, rows: Sequence[Row]) -> None:
        try:
            count = self.event_spool.append(rows, sync=True)
        except OSError as exc:
            logger.error(
                "Journal spool %s is not writable (%s): %d completion events lost.",
                self.event_spool.directory,
                exc.strerror,
                len(rows),
            )
            return
        self.stats.events_spooled += count

    def _decode(self, rows: list[Row]) -> list[Row]:
        """Rows read back from the spool; one that does not decode is set aside."""
        decoded: list[Row] = []
        failed: list[Row] = []
        for row in rows:
            try:
                decoded.append(_decode_row(row))
            except (TypeError, ValueError) as exc:
                failed.append({"error": describe(exc), "row": row})
        if failed:
            self._reject(failed)
        return decoded

    def _spool(self, rows: Sequence[Row], *, sync: bool) -> None:
        try:
            count = self.spool.append(rows, sync=sync)
        except OSError as exc:
            logger.error(
                "Journal spool %s is not writable (%s): %d records lost.",
                self.spool.directory,
                exc.strerror,
                len(rows),
            )
            return
        self.stats.spooled += count
        if self.down:
            self._outage_rows += count

    def _reject(self, entries: list[Row]) -> None:
        path = self.spool.directory / f"rejected-{os.getpid()}.jsonl"
        self.stats.rejected += len(entries)
        try:
            append_lines(path, entries)
        except OSError as exc:
            logger.error("Journal: %d refused rows lost (%s).", len(entries), exc.strerror)
            return
        logger.error("Journal: %d row(s) refused (not storable), kept in %s.", len(entries), path)

    def _publish(self, rows: list[Row]) -> None:
        loop = self.loop
        if loop is None or loop.is_closed():
            return
        live = _live_view()
        if live is None:
            return
        self._publish_summaries([live.summarize(row) for row in rows])  # not in the loop

    def _publish_summaries(self, summaries: list[Row]) -> None:
        loop = self.loop
        live = _live_view()
        if loop is None or loop.is_closed() or live is None or not summaries:
            return
        try:
            future = asyncio.run_coroutine_threadsafe(live.broadcast_summaries(summaries), loop)
        except RuntimeError:  # the loop closed in between
            return
        future.add_done_callback(_log_publish_failure)

    def _close(self) -> None:
        self._store.close()
        self.spool.close()
        self.event_spool.close()
        if self._converter is not None:
            self._converter.close()


# -- storing rows ---------------------------------------------------------------------


class _Store:
    """Rows into the journal table of one database alias, on this thread's connection."""

    def __init__(self, alias: str) -> None:
        self.alias = alias

    def insert(self, rows: list[Row], *, ignore_conflicts: bool) -> None:
        from journal.models import Entry

        names = set(_columns())
        objects = Entry.objects.using(self.alias)
        with transaction.atomic(using=self.alias):
            if ignore_conflicts:
                # Not bulk_create(ignore_conflicts=True): SQLite's INSERT OR IGNORE also
                # skips NOT NULL and CHECK failures, and a refused row would vanish unseen.
                wanted = {row.get("request_id") for row in rows}
                stored = objects.filter(request_id__in=wanted).values_list("request_id", flat=True)
                rows = _unseen(rows, set(stored))
            entries = [Entry(**{k: v for k, v in row.items() if k in names}) for row in rows]
            objects.bulk_create(entries)

    def probe(self) -> None:
        # The table, not just the server: a journal database that is up but not migrated
        # yet would refuse every row.
        try:
            self._probe_table()
        except Exception as exc:
            if self.alias != JOURNAL_ALIAS or not _missing_schema(exc):
                raise
            # The journal's own database was away when the server started, or is a new
            # one: create and migrate it now, as the start would have.
            self.close()
            call_command("kodify_migrate", database=self.alias, verbosity=0)
            self._probe_table()

    def _probe_table(self) -> None:
        with connections[self.alias].cursor() as cursor:
            cursor.execute(f"SELECT 1 FROM {TABLE} WHERE 1 = 0")  # noqa: S608 - a constant

    def close(self) -> None:
        with contextlib.suppress(Exception):  # a connection that is already gone
            connections[self.alias].close()


class _EventStore:
    """Completion events into the journal with the ORM, on this thread's connection."""

    def __init__(self, alias: str) -> None:
        self.alias = alias

    def insert(self, rows: list[Row], *, skip_stored: bool) -> None:
        from journal.models import Event

        names = _event_columns()
        objects = Event.objects.using(self.alias)
        with transaction.atomic(using=self.alias):
            if skip_stored:
                rows = _unstored_events(objects, rows)
            if rows:
                events = [Event(**{k: v for k, v in row.items() if k in names}) for row in rows]
                objects.bulk_create(events)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            connections[self.alias].close()


def _unstored_events(objects: Any, rows: list[Row]) -> list[Row]:
    """The rows not in the table yet, nor earlier in the batch.

    An event's time is kept to the microsecond, so (time, kind, response id, choice)
    tells a replayed event from another; the lookup reads the batch's ids through the
    ``journal_event_response`` index.
    """
    times = [row["created_at"] for row in rows]
    stored = objects.filter(
        response_id__in={row.get("response_id", "") for row in rows},
        created_at__gte=min(times),
        created_at__lte=max(times),
    ).values_list("created_at", "kind", "response_id", "choice_index")
    seen = set(stored)
    unstored: list[Row] = []
    for row in rows:
        key = (
            row["created_at"],
            row.get("kind"),
            row.get("response_id", ""),
            row.get("choice_index"),
        )
        if key not in seen:
            seen.add(key)
            unstored.append(row)
    return unstored


class _PostgresStore(_Store):
    """COPY, on the driver's connection: the ORM's bulk_create costs several times the
    CPU, taken from the event loop that shares this process's GIL."""

    def insert(self, rows: list[Row], *, ignore_conflicts: bool) -> None:
        connection = connections[self.alias]
        connection.ensure_connection()
        raw: psycopg.Connection[Any] = connection.connection
        columns = ", ".join(_columns())
        values = _values
        with raw.transaction(), raw.cursor() as cursor:
            if ignore_conflicts:
                cursor.execute(
                    f"CREATE TEMP TABLE journal_entry_load ON COMMIT DROP AS "  # noqa: S608
                    f"SELECT {columns} FROM {TABLE} WITH NO DATA"
                )
                target = "journal_entry_load"
            else:
                target = TABLE
            with cursor.copy(f"COPY {target} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(values(row))
            if ignore_conflicts:
                cursor.execute(
                    f"INSERT INTO {TABLE} ({columns}) SELECT {columns} "  # noqa: S608
                    "FROM journal_entry_load ON CONFLICT (request_id) DO NOTHING"
                )


def _unseen(rows: list[Row], seen: set[Any]) -> list[Row]:
    """The rows whose request id is neither in ``seen`` nor earlier in the batch."""
    unseen: list[Row] = []
    for row in rows:
        request_id = row.get("request_id")
        if request_id not in seen:
            seen.add(request_id)
            unseen.append(row)
    return unseen


class HelperReport(Exception):
    """An outage as the helper process saw it (its description only)."""


def store_for(alias: str) -> _Store:
    vendor = connections[alias].vendor
    return _PostgresStore(alias) if vendor == "postgresql" else _Store(alias)


@cache
def _field_table() -> tuple[tuple[tuple[str, Any], ...], tuple[int, ...]]:
    """(name, default) of each column the writer fills, and the positions of those where
    an empty string means NULL (an IP address)."""
    from journal.models import Entry

    fields = [field for field in Entry._meta.concrete_fields if not field.primary_key]
    defaults = tuple((field.attname, field.get_default()) for field in fields)
    empty_is_null = tuple(
        index
        for index, field in enumerate(fields)
        if field.null and not field.empty_strings_allowed
    )
    return defaults, empty_is_null


@cache
def _columns() -> tuple[str, ...]:
    return tuple(name for name, _ in _field_table()[0])


@cache
def _datetime_columns() -> frozenset[str]:
    from journal.models import Entry

    return frozenset(
        field.attname
        for field in Entry._meta.concrete_fields
        if field.get_internal_type() == "DateTimeField"
    )


def _values(row: Row) -> list[Any]:
    defaults, empty_is_null = _field_table()
    get = row.get
    values = [get(name, default) for name, default in defaults]
    for index in empty_is_null:
        if values[index] == "":
            values[index] = None
    return values


def _decode_row(row: Row) -> Row:
    """A row read back from the spool: its datetimes were written as ISO strings."""
    for name in _datetime_columns():
        value = row.get(name)
        if isinstance(value, str):
            row[name] = datetime.fromisoformat(value)
    return row


# -- errors ---------------------------------------------------------------------------


def _causes(exc: BaseException) -> Iterable[BaseException]:
    yield exc
    if exc.__cause__ is not None:
        yield exc.__cause__


def is_unavailable(exc: BaseException) -> bool:
    return any(
        isinstance(error, _UNAVAILABLE_TYPES)
        or getattr(error, "sqlstate", None) in _UNAVAILABLE_SQLSTATES
        for error in _causes(exc)
    )


def _missing_schema(exc: BaseException) -> bool:
    """The database answers but has no journal table, or does not exist yet."""
    return any(
        getattr(error, "sqlstate", None) in ("42P01", "3D000")
        # libpq reports a missing database at connect time without a SQLSTATE.
        or ("database" in str(error) and "does not exist" in str(error))
        for error in _causes(exc)
    )


def is_duplicate(exc: BaseException) -> bool:
    """A request id already stored (PostgreSQL's unique_violation, SQLite's message)."""
    return any(
        isinstance(error, psycopg.errors.UniqueViolation)
        or (isinstance(error, db.IntegrityError) and f"{TABLE}.request_id" in str(error))
        for error in _causes(exc)
    )


def describe(exc: BaseException) -> str:
    """The error's kind and first line: enough to act on, never a row's contents."""
    if isinstance(exc, HelperReport):
        return str(exc)  # described in the helper process already
    sqlstate = next(filter(None, (getattr(e, "sqlstate", None) for e in _causes(exc))), None)
    first_line = (str(exc).strip().splitlines() or [""])[0][:200]
    kind = type(exc).__name__ + (f" {sqlstate}" if sqlstate else "")
    return f"{kind}: {first_line}" if first_line else kind


@cache
def _event_columns() -> frozenset[str]:
    from journal.models import Event

    return frozenset(field.attname for field in Event._meta.concrete_fields)


@cache
def _event_text_limits() -> tuple[tuple[str, int], ...]:
    from journal.models import Event

    return tuple(
        (field.attname, field.max_length)
        for field in Event._meta.concrete_fields
        if field.get_internal_type() == "CharField" and field.max_length
    )


def event_row(event: EventRecord) -> Row:
    """The ``journal.models.Event`` fields of an event, each text cut to what its column
    holds (a longer one would be refused, and the whole event with it)."""
    payload = event.payload if isinstance(event.payload, dict) else {}
    language = event.language or payload.get("language") or ""
    row: Row = {
        "created_at": datetime.fromtimestamp(event.created_at, UTC),
        "kind": event.kind,
        "response_id": event.response_id or "",
        "choice_index": event.choice_index,
        "user_id": event.user_id,
        "username": event.username or "",
        "client_name": parse_user_agent(event.user_agent)[0] if event.user_agent else "",
        "language": language if isinstance(language, str) else "",
        "payload": storable_payload(payload),
    }
    for name, limit in _event_text_limits():
        value = row.get(name)
        if isinstance(value, str) and len(value) > limit:
            row[name] = value[:limit]
    return row


def storable_payload(payload: dict[str, Any]) -> dict[str, Any]:
    """The payload as JSON holds it; past EVENT_PAYLOAD_MAX_BYTES only its first short
    scalar fields, marked ``"truncated": true`` (its size is the client's choice)."""
    data = orjson.dumps(payload, default=str, option=orjson.OPT_NON_STR_KEYS)
    if len(data) <= EVENT_PAYLOAD_MAX_BYTES:
        loaded: dict[str, Any] = orjson.loads(data)
        return loaded
    kept: dict[str, Any] = {"truncated": True}
    for key, value in payload.items():
        if len(kept) > EVENT_PAYLOAD_MAX_FIELDS:
            break
        if isinstance(value, str):
            kept[str(key)[:EVENT_PAYLOAD_MAX_TEXT]] = value[:EVENT_PAYLOAD_MAX_TEXT]
        elif value is None or isinstance(value, bool | int | float):
            kept[str(key)[:EVENT_PAYLOAD_MAX_TEXT]] = value
    return kept


def _record_fields(rec: Record) -> Row:
    fields = asdict(rec)
    fields["request_body"] = rec.request_body.decode("utf-8", "replace")
    fields["response_chunks"] = [c.decode("utf-8", "replace") for c in rec.response_chunks]
    return fields


# -- optional collaborators -------------------------------------------------------------


def _default_build_row() -> BuildRow:
    from journal.rows import build_row

    return build_row


def _failing(error: Exception) -> BuildRow:
    def build_row(rec: Record) -> Row:
        raise error

    return build_row


_live_problem_logged = False


def _live_view() -> Any:
    """The ``journal.live`` module when the live view can be loaded, else None."""
    global _live_problem_logged
    try:
        from journal import live
    except Exception:
        if not _live_problem_logged:
            _live_problem_logged = True
            logger.exception("Journal live view could not be loaded")
        return None
    return live


def _log_publish_failure(future: concurrent.futures.Future[None]) -> None:
    if future.cancelled():
        return
    error = future.exception()
    if error is not None:
        logger.warning("Journal live view: %s", describe(error))
