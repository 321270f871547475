"""The journal's background writer: records in, batches of rows into the database.

The request path only appends a record to an in-memory queue (:meth:`JournalWriter.submit`);
this thread turns records into rows (``journal/converter.py``) and stores them a batch
at a time (``journal/store.py``).  The queue is a ``deque`` rather than a ``queue.Queue``:
``Queue.put`` takes a lock and wakes a waiting consumer on every record, which at
thousands of requests a second would pull this thread onto the GIL once per request.
Here the thread wakes once per ``KODIFY_JOURNAL_FLUSH_SECONDS`` or once per full batch.
The queue is bounded: past ``KODIFY_JOURNAL_QUEUE_SIZE`` records go to the spool file at
once (nothing is dropped).

A record in the queue is also on disk: :meth:`JournalWriter.submit` writes it to this
process's hand-off log as it queues it (one ``writev``, no fsync), and each turn deletes
the part of the log whose records it stored, so that a worker killed with records in
memory loses none of them: another writer recovers them (``journal/handoff.py``).

When the database is unreachable, batches go to the spool (``journal/spool.py``) and the
thread probes the database with a growing pause; once it answers, every spool file
(ours and those of dead processes) is replayed with inserts that skip stored rows, which
is why a batch that committed but whose acknowledgement was lost is never stored twice.
Replay goes a bounded batch at a time with a rest in between (``journal/replay.py``), so
that it never takes the GIL from the requests for long.
A row the database refuses (too long, not null…) is set aside in ``rejected-<pid>.jsonl``
so that it cannot hold the rest of the journal back.

Tabby's completion events (:class:`~journal.record.EventRecord`) travel in the same queue
and are stored by this thread too, in the turn that stores the requests queued beside
them, so ``flush`` covers them; ``journal/events.py`` says what is guaranteed for them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings

from journal.converter import BuildRow, ProcessConverter, record_fields, rows_here, rows_of
from journal.events import event_rows
from journal.handoff import HANDOFF_SUBDIR, HandoffLog
from journal.live_publish import publish_rows, publish_summaries
from journal.record import EventRecord, Record
from journal.replay import REPLAY_BATCH_ROWS, CatchingUp
from journal.router import journal_database
from journal.spool import EVENT_SPOOL_SUBDIR, Row, Spool, append_lines
from journal.store import EventStore, HelperReport, Store, describe, insert_batch, store_for

logger = logging.getLogger("kodify.journal")

PROBE_FIRST_SECONDS = 0.5
PROBE_MAX_SECONDS = 10.0
# Other processes' spool and hand-off files appear when a worker dies; a new worker
# adopts them at start, and every writer looks again this often.
ORPHAN_SCAN_SECONDS = 30.0
# A full queue drops events; saying so once a minute is enough to be noticed.
EVENT_DROP_WARNING_SECONDS = 60.0


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
    recovered: int = 0  # records recovered from dead workers' hand-off logs
    replay_steps: int = 0  # bounded steps of replay and recovery, each followed by a rest


class JournalWriter(CatchingUp, threading.Thread):
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
        self.event_spool = Spool(self.spool.directory / EVENT_SPOOL_SUBDIR)
        self.handoff = HandoffLog(self.spool.directory / HANDOFF_SUBDIR)
        self.replay_rows = min(self.batch_size, REPLAY_BATCH_ROWS)
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
        self._event_store = EventStore(self.alias)
        self._next_drop_warning = 0.0
        self._down_since = 0.0
        self._outage_rows = 0
        self._backoff = PROBE_FIRST_SECONDS
        self._next_probe = 0.0
        self._next_orphan_scan = 0.0
        self._replayed: dict[str, int] = {}  # rows replayed per spool, for the log
        self._next_step_at = 0.0  # of catching up: after a rest (journal/replay.py)
        self._catching_up = False
        self._lost = False  # a spool append failed this turn

    # -- the request side --------------------------------------------------------------

    def submit(self, rec: Record) -> None:
        """Queue a record; never blocks on the database (see the module's docstring)."""
        pending = self._pending
        if len(pending) >= self.queue_size:
            self._overflow(rec)
            return
        self.handoff.append(rec, pending)  # on disk (page cache), then queued
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

    def queued(self) -> int:
        """Records and events waiting in memory (a deque's len() is atomic: any thread)."""
        return len(self._pending)

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
            self.handoff.close()

    def _spool_pending(self) -> None:
        records: list[Record] = []
        events: list[EventRecord] = []
        flushes: list[_Flush] = []
        count, handed_over = self.handoff.cut(self._pending)
        self._lost = False
        for _ in range(count):
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
        self._handed_over(handed_over)
        if events:
            self._spool_events(self._event_rows(events))
        for flush in flushes:
            flush.done.set()

    def _handed_over(self, handed_over: Any) -> None:
        """The records of a cut of the hand-off log are stored (or spooled): delete it,
        unless a spool write failed on the way."""
        if self._lost:
            self.handoff.recover_later(handed_over)
        else:
            self.handoff.done(handed_over)

    # -- the thread ----------------------------------------------------------------------

    def run(self) -> None:
        try:
            self._next_orphan_scan = time.monotonic()
            self._maintain(stopping=False)  # at once: adopt what dead workers left
            while True:
                self._wake.wait(self._wait_seconds())
                self._wake.clear()
                try:
                    if self._turn():
                        return
                except Exception:
                    # A bug here must not end the journal: the next turn tries again.
                    logger.exception("Journal writer: unexpected error")
        finally:
            self._close()

    def _wait_seconds(self) -> float:
        """Until the next turn: the flush interval, or the end of a rest of catching up."""
        if not self._catching_up:
            return self.flush_seconds
        return max(0.0, min(self.flush_seconds, self._next_step_at - time.monotonic()))

    def _turn(self) -> bool:
        """One pass: store what is queued, then probe or replay; True when told to stop."""
        items: list[Any] = []
        pending = self._pending
        # The records taken now are exactly those of the cut of the hand-off log.
        count, handed_over = self.handoff.cut(pending)
        self._lost = False
        for _ in range(count):
            try:
                items.append(pending.popleft())
            except IndexError:  # taken by stop() meanwhile
                break
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
            self.handoff.recover_later(handed_over)  # in case: recovery skips stored ones
            raise
        finally:
            self.spool.sync()  # the event loop's overflow appends
            if self._overflowing and len(pending) < self.queue_size // 2:
                self._overflowing = False
        self._handed_over(handed_over)
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
                    {"error": error, "record": record_fields(records[i])}
                    for i, error in stored.failed
                ]
            )
        if stored.outcome == "stored":
            self.stats.written += len(stored.rows)
            publish_summaries(self.loop, stored.rows)
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
        error = self._insert(self._store, rows, skip_stored=False, kind="row")
        if error is not None:
            self._go_down(error)
            self._spool(rows, sync=True)
            return
        self.stats.written += len(rows)
        publish_rows(self.loop, rows)

    def _store_events(self, events: list[EventRecord]) -> None:
        rows = self._event_rows(events)
        for start in range(0, len(rows), self.batch_size):
            batch = rows[start : start + self.batch_size]
            if self.down:
                self._spool_events(batch)
                continue
            error = self._insert(self._event_store, batch, skip_stored=False, kind="event")
            if error is not None:
                self._go_down(error)
                self._spool_events(batch)
                continue
            self.stats.events_written += len(batch)

    def _maintain(self, *, stopping: bool) -> None:
        now = time.monotonic()
        if self.down and not stopping and now >= self._next_probe:
            if self._probe():
                self.down = False
                logger.info(
                    "Journal database is back after %.1f s; replaying %d spooled rows.",
                    now - self._down_since,
                    self._outage_rows,
                )
                self._outage_rows = 0
                self._next_orphan_scan = now
            else:
                self._backoff = min(self._backoff * 2, PROBE_MAX_SECONDS)
                self._next_probe = now + self._backoff
        if not self.down:
            for spool in (self.spool, self.event_spool):
                if spool.has_unsealed():
                    spool.seal()
        if now >= self._next_orphan_scan:
            self._next_orphan_scan = now + ORPHAN_SCAN_SECONDS
            self.handoff.adopt_orphans()
            if not self.down:
                self.spool.adopt_orphans()
                self.event_spool.adopt_orphans()
        # Bounded steps with rests between them (journal/replay.py); not while stopping.
        self._catching_up = not stopping and self._catch_up()

    # -- the database -------------------------------------------------------------------

    def _insert(
        self, store: Store, rows: list[Row], *, skip_stored: bool, kind: str
    ) -> BaseException | None:
        """Store a batch; the error when the database is unavailable, the refused rows
        set aside."""
        inserted = insert_batch(store, rows, skip_stored=skip_stored, kind=kind)
        if inserted.refused:
            self._reject(inserted.refused)
        return inserted.unavailable

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

    # -- rows, spool, rejected rows -----------------------------------------------------

    def _convert(self, records: Sequence[Record], *, inline: bool = False) -> list[Row]:
        """Rows of ``records``; in the helper process unless ``inline`` (the caller may be
        the event loop) or a converter of the caller's own was given."""
        if self._converter is not None and not inline and records:
            converted = self._converter.convert(list(records))
            if converted is not None:
                return self._kept(rows_of(records, converted))
        return self._kept(rows_here(records, self._build_row))

    def _event_rows(self, events: Sequence[EventRecord]) -> list[Row]:
        return self._kept(event_rows(events))

    def _kept(self, made: tuple[list[Row], list[Row]]) -> list[Row]:
        """The rows of a (rows, failures) pair; the failures are set aside."""
        rows, failed = made
        if failed:
            self._reject(failed)
        return rows

    def _spool(self, rows: Sequence[Row], *, sync: bool) -> None:
        count = _append(self.spool, rows, sync=sync, what="records")
        self._lost = self._lost or count < len(rows)
        self.stats.spooled += count
        if self.down:
            self._outage_rows += count

    def _spool_events(self, rows: Sequence[Row]) -> None:
        count = _append(self.event_spool, rows, sync=True, what="completion events")
        self.stats.events_spooled += count

    def _reject(self, entries: list[Row]) -> None:
        path = self.spool.directory / f"rejected-{os.getpid()}.jsonl"
        self.stats.rejected += len(entries)
        try:
            append_lines(path, entries)
        except OSError as exc:
            logger.error("Journal: %d refused rows lost (%s).", len(entries), exc.strerror)
            return
        logger.error("Journal: %d row(s) refused (not storable), kept in %s.", len(entries), path)

    def _close(self) -> None:
        self._store.close()
        self.spool.close()
        self.event_spool.close()
        self.handoff.close()
        if self._converter is not None:
            self._converter.close()


def _append(spool: Spool, rows: Sequence[Row], *, sync: bool, what: str) -> int:
    """Rows onto ``spool``: how many, or 0 (and an error in the log) if it failed."""
    try:
        return spool.append(rows, sync=sync)
    except OSError as exc:
        logger.error(
            "Journal spool %s is not writable (%s): %d %s lost.",
            spool.directory,
            exc.strerror,
            len(rows),
            what,
        )
        return 0
