"""The journal writer catching up: spooled rows back into the database, and the records
that dead workers had handed over (``journal/handoff.py``) back into the journal.

Both run in the writer's thread, never on the event loop, and both are paced so that
the journal never slows a request: catching up goes one bounded batch at a time
(``REPLAY_BATCH_ROWS`` rows at most), and after each batch the thread rests for
``REPLAY_PAUSE_FACTOR`` times the CPU time the batch took (``REPLAY_PAUSE_MIN_SECONDS``
at least), waiting without the GIL.  Without that rest, a long outage's spool (tens of
thousands of rows) replayed back to back kept the GIL busy in the writer's thread, and
the event loop of the same process, which gives the GIL up at every system call, waited
for it again each time: throughput fell from thousands of requests a second to ten.
Fresh records are not held back by the pacing: a full batch wakes the writer as always.

The records of a dead worker's hand-off log are converted (in the helper process when
there is one) and appended to the spool, then replayed with the spooled rows, with
inserts that skip request ids already stored: recovering a record twice, or one that was
stored before its worker died, never doubles its row.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from journal.events import decode_event_rows
from journal.spool import Row, Spool
from journal.store import decode_rows

if TYPE_CHECKING:
    from journal.handoff import HandoffLog
    from journal.record import Record
    from journal.store import EntryStore, EventStore, Store
    from journal.writer import WriterStats

logger = logging.getLogger("kodify.journal")

# The most rows (or hand-off records) one step of catching up handles.
REPLAY_BATCH_ROWS = 100
# After each step the writer's thread rests this many times the CPU time the step took…
REPLAY_PAUSE_FACTOR = 4.0
# …and at least this long.
REPLAY_PAUSE_MIN_SECONDS = 0.01


class CatchingUp:
    """The writer's catching up (a part of :class:`journal.writer.JournalWriter`)."""

    # The writer's, set in its __init__.
    spool: Spool
    event_spool: Spool
    handoff: HandoffLog
    down: bool
    replay_rows: int
    stats: WriterStats
    _store: EntryStore
    _event_store: EventStore
    _replayed: dict[str, int]
    _next_step_at: float

    if TYPE_CHECKING:

        def _go_down(self, error: BaseException) -> None: ...

        def _convert(self, records: Sequence[Record], *, inline: bool = False) -> list[Row]: ...

        def _kept(self, made: tuple[list[Row], list[Row]]) -> list[Row]: ...

        def _insert(
            self, store: Store, rows: list[Row], *, skip_stored: bool, kind: str
        ) -> BaseException | None: ...

    def _catch_up(self) -> bool:
        """One bounded step: a batch of a dead worker's hand-off log, else of the spool;
        then a rest.  True while there may be more to do (resting included)."""
        if time.monotonic() < self._next_step_at:
            return True
        spent = time.thread_time()
        worked = self._recover_some() or (not self.down and self._replay_some())
        if worked:
            spent = time.thread_time() - spent
            self.stats.replay_steps += 1
            rest = max(REPLAY_PAUSE_MIN_SECONDS, REPLAY_PAUSE_FACTOR * spent)
            self._next_step_at = time.monotonic() + rest
        return worked

    # -- dead workers' hand-off logs ------------------------------------------------------

    def _recover_some(self) -> bool:
        """Records of the first adopted hand-off log into the spool; False when none."""
        for log in self.handoff.adopted():
            try:
                records, end, finished = self.handoff.read(log, self.replay_rows)
            except OSError as exc:
                logger.error("Journal hand-off log %s unreadable: %s", log.path, exc.strerror)
                self.handoff.release(log)
                continue
            if records:
                rows = self._convert(records)
                try:
                    self.spool.append(rows, sync=True)
                except OSError as exc:
                    # Kept (unlocked) for a later try, by this writer or another.
                    logger.error(
                        "Journal spool %s is not writable (%s): hand-off log %s kept.",
                        self.spool.directory,
                        exc.strerror,
                        log.path.name,
                    )
                    self.handoff.release(log)
                    return True
                self.stats.recovered += len(records)
                log.recovered += len(records)
            log.offset = end
            if finished:
                if log.recovered:
                    logger.info(
                        "Journal: %d record(s) of a stopped worker recovered from %s.",
                        log.recovered,
                        log.path.name,
                    )
                self.handoff.discard(log)
            return True
        return False

    # -- the spool ------------------------------------------------------------------------

    def _replay_some(self) -> bool:
        """Replay one batch, requests first; False when both spools are drained."""
        return self._replay(self.spool, self._replay_rows_batch, "rows") or (
            not self.down and self._replay(self.event_spool, self._replay_events_batch, "events")
        )

    def _replay(
        self, spool: Spool, insert: Callable[[list[Row]], BaseException | None], what: str
    ) -> bool:
        """Replay the next batch of ``spool``'s first sealed file (or finish the file);
        False when there is none."""
        for spool_file in spool.sealed():
            try:
                batches = spool.batches(spool_file, self.replay_rows)
                try:
                    for rows, end in batches:
                        if rows:
                            error = insert(rows)
                            if error is not None:
                                self._go_down(error)
                                return True
                            self._replayed[what] = self._replayed.get(what, 0) + len(rows)
                        spool_file.offset = end
                        return True
                finally:
                    batches.close()
            except OSError as exc:
                # Left for a later writer (it is unlocked now) rather than retried each turn.
                logger.error("Journal spool %s unreadable: %s", spool_file.path, exc.strerror)
                spool.release(spool_file)
                continue
            spool.discard(spool_file)
            if not spool.sealed():
                logger.info("Journal spool replayed: %d %s.", self._replayed.pop(what, 0), what)
            return True
        return False

    def _replay_rows_batch(self, rows: list[Row]) -> BaseException | None:
        decoded = self._kept(decode_rows(rows))
        error = self._insert(self._store, decoded, skip_stored=True, kind="row")
        if error is None:
            self.stats.replayed += len(rows)
        return error

    def _replay_events_batch(self, rows: list[Row]) -> BaseException | None:
        decoded = self._kept(decode_event_rows(rows))
        error = self._insert(self._event_store, decoded, skip_stored=True, kind="event")
        if error is None:
            self.stats.events_replayed += len(rows)
        return error
