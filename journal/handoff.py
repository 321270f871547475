"""The hand-off log: every record a worker answered, on disk the moment it is handed over.

The writer keeps records in memory until it has stored them (``journal/writer.py``); a
worker killed meanwhile (``kill -9``, the OOM killer) would take them along, answered but
never journaled.  So :meth:`HandoffLog.append` also writes each record, as the request
hands it over, to a file of the worker's own with *one* ``writev`` on a descriptor
opened ``O_APPEND``: once that call returns the record is in the kernel's page cache,
which outlives the process.

Files.  ``handoff/wal-<pid>-<random>.log`` in the spool folder, each locked (``flock``)
by its worker for as long as it lives, exactly like the spool's files
(``journal/spool.py``): a file nobody holds belongs to a dead worker.  A file starts
with a line naming the format and the :class:`~journal.record.Record` fields in the
order its frames list them (a newer version reading an older worker's file maps them by
name), then one frame per record::

    "KJ" | meta length (u32 LE) | crc32 of meta (u32 LE) | meta | request body | answer
    meta = JSON [[the scalar fields…], len(request body), len(answer)]

The bodies stay bytes as the upstream sent them; the answer's chunks are kept joined
(``journal.rows`` reads a stream split anywhere).  A killed process can leave its last
frame cut short: the reader stops at a frame that is short, does not start with the
magic or whose meta fails its checksum, and says how many bytes it skipped.

Marking what is stored.  The writer cuts the log at each turn (:meth:`HandoffLog.cut`):
the file written so far is set aside and a new one takes the appends, under the lock
that also orders the appends to the writer's queue, so the records of a set-aside file
are exactly those the writer has just taken from its queue.  Once they are in the
database (or in the spool, fsynced) the file is deleted (:meth:`HandoffLog.done`): a
file that exists holds records that may not be stored yet.

Adoption.  Every writer takes over the files of dead workers at its start and every
``ORPHAN_SCAN_SECONDS`` (:meth:`HandoffLog.adopt_orphans`); their records are converted
and spooled, a bounded batch at a time, then replayed like any spooled row, with inserts
that skip request ids already stored (``request_id`` is unique): a record stored before
its worker died, or recovered twice, is never doubled.

fsync policy.  None on the request path: an fsync per request would stall the event
loop.  A record is durable against a *process* kill as soon as it is handed over; against
a *power loss or kernel crash* only once the writer has stored it (a PostgreSQL commit)
or spooled it (the spool is fsynced), which happens within ``KODIFY_JOURNAL_FLUSH_SECONDS``
of its arrival while the writer keeps up.  A power loss can therefore still lose the
records of the last flush interval plus whatever backlog the writer had (and leave a
file whose tail is zeros or torn: the reader stops there).

Completion events (``EventRecord``) are not logged here: like today they are dropped
when the queue is full, and are not worth a disk write on the event loop.
"""

from __future__ import annotations

import contextlib
import logging
import os
import struct
import threading
import time
import zlib
from collections import deque
from dataclasses import dataclass, field, fields
from operator import attrgetter
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from journal.record import Record
from journal.spool import create_locked, lock_orphan, remove_abandoned_creations

logger = logging.getLogger("kodify.journal")

HANDOFF_SUBDIR = "handoff"
LOG_PREFIX = "wal-"
LOG_SUFFIX = ".log"
FORMAT = b"kodify-journal-handoff 1"
MAGIC = b"KJ"
_FRAME = struct.Struct("<2sII")  # magic, meta length, crc32 of meta
_MAX_META = 1 << 20
_BYTES_FIELDS = ("request_body", "response_chunks")
SCALAR_FIELDS = tuple(f.name for f in fields(Record) if f.name not in _BYTES_FIELDS)
_scalars = attrgetter(*SCALAR_FIELDS)
_HEADER = FORMAT + b" " + orjson.dumps(SCALAR_FIELDS) + b"\n"
ERROR_LOG_SECONDS = 60.0


def encode(rec: Record) -> list[bytes]:
    """One record's frame, in parts for ``writev``."""
    body = rec.request_body
    chunks = rec.response_chunks
    answer = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    meta = orjson.dumps((_scalars(rec), len(body), len(answer)))
    return [_FRAME.pack(MAGIC, len(meta), zlib.crc32(meta)), meta, body, answer]


@dataclass
class LogFile:
    """One hand-off file: ours (appended to), or a dead worker's (read back)."""

    path: Path
    fd: int
    size: int = 0  # bytes written (ours) or found (adopted)
    offset: int = 0  # bytes read back and recovered so far (adopted)
    names: tuple[str, ...] = field(default=SCALAR_FIELDS, repr=False)
    skipped: int = 0  # bytes of a torn or unreadable tail
    recovered: int = 0  # records recovered (adopted)

    @property
    def has_records(self) -> bool:
        return self.size > len(_HEADER)


class HandoffLog:
    """This process's hand-off files (see the module's docstring)."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        # Orders the appends to the file and to the writer's queue (any thread), and the
        # writer's cuts.
        self._lock = threading.Lock()
        self._current: LogFile | None = None
        self._spare: LogFile | None = None  # made by the writer, off the event loop
        self._adopted: list[LogFile] = []
        self._next_error_log = 0.0
        self.errors = 0

    # -- the request side: one write per record ------------------------------------------

    def append(self, rec: Record, pending: deque[Any]) -> None:
        """Write ``rec`` to the log, then queue it on ``pending``; never raises for the
        log (the record is then only queued, as before the log existed)."""
        try:
            frame: list[bytes] | None = encode(rec)
        except Exception as exc:
            frame = None
            self._failed(exc)
        with self._lock:
            if frame is not None:
                try:
                    self._write(frame)
                except OSError as exc:
                    self._failed(exc)
            pending.append(rec)

    def _write(self, frame: list[bytes]) -> None:
        log = self._current
        if log is None:
            log = self._current = self._spare or self._create()
            self._spare = None
        written = os.writev(log.fd, frame)
        size = sum(map(len, frame))
        if written != size:  # a full disk: cut the partial frame off
            with contextlib.suppress(OSError):
                os.ftruncate(log.fd, log.size)
            raise OSError(28, "partial write to the journal hand-off log")
        log.size += size

    def _failed(self, exc: BaseException) -> None:
        self.errors += 1
        now = time.monotonic()
        if now >= self._next_error_log:
            self._next_error_log = now + ERROR_LOG_SECONDS
            logger.error(
                "Journal hand-off log in %s not written (%s): %d record(s) so far are "
                "only in memory until stored.",
                self.directory,
                exc,
                self.errors,
            )

    def _create(self) -> LogFile:
        path, fd = create_locked(self.directory, LOG_PREFIX, LOG_SUFFIX)
        try:
            os.write(fd, _HEADER)
        except OSError:
            os.close(fd)
            with contextlib.suppress(OSError):
                path.unlink()
            raise
        return LogFile(path=path, fd=fd, size=len(_HEADER))

    # -- the writer's side ---------------------------------------------------------------

    def cut(self, pending: deque[Any]) -> tuple[int, LogFile | None]:
        """How many items the writer may take from ``pending`` now, and the file that
        holds exactly the records among them (None: nothing to set aside); appends go
        to a new file from now on.  Hand the file to :meth:`done` once they are stored."""
        spare = None
        if self._spare is None:  # made outside the lock, the event loop's to take
            try:
                spare = self._create()
            except OSError as exc:
                self._failed(exc)
        with self._lock:
            if spare is not None and self._spare is None:
                self._spare, spare = spare, None
            count = len(pending)
            full = self._current
            if full is None or not full.has_records or self._spare is None:
                full = None  # without a spare the records stay in the current file
            else:
                self._current, self._spare = self._spare, None
        if spare is not None:  # the event loop made one meanwhile
            self.done(spare)
        return count, full

    def done(self, log: LogFile | None) -> None:
        """The records of a file set aside by :meth:`cut` are stored: delete it."""
        if log is not None:
            with contextlib.suppress(FileNotFoundError):
                log.path.unlink()
            self._close(log)

    def recover_later(self, log: LogFile | None) -> None:
        """The records of a file set aside by :meth:`cut` may not be stored: recover it
        like a dead worker's."""
        if log is not None:
            log.offset = 0
            with self._lock:
                self._adopted.append(log)

    def adopt_orphans(self) -> int:
        """Take over the files of dead workers; how many."""
        remove_abandoned_creations(self.directory)
        try:
            candidates = sorted(self.directory.glob(f"{LOG_PREFIX}*{LOG_SUFFIX}"))
        except OSError:
            return 0
        adopted = 0
        for path in candidates:
            locked = lock_orphan(path)
            if locked is not None:
                with self._lock:
                    self._adopted.append(LogFile(path=path, fd=locked.fd, size=locked.size))
                adopted += 1
        return adopted

    def adopted(self) -> list[LogFile]:
        with self._lock:
            return list(self._adopted)

    def read(self, log: LogFile, limit: int) -> tuple[list[Record], int, bool]:
        """Up to ``limit`` records of an adopted file from ``log.offset``; the offset just
        past them, and whether the file is read to its end (or to a torn frame)."""
        records: list[Record] = []
        with open(log.path, "rb") as handle:
            if log.offset == 0:
                names = _read_header(handle)
                if names is None:
                    log.skipped = log.size
                    return [], log.size, True
                log.names, log.offset = names, handle.tell()
            handle.seek(log.offset)
            offset = log.offset
            while len(records) < limit:
                rec, end = _read_frame(handle, log.names)
                if rec is None:
                    if end:  # not at the end of the file: a torn or damaged frame
                        log.skipped = max(log.size, os.fstat(handle.fileno()).st_size) - offset
                    return records, offset, True
                records.append(rec)
                offset = handle.tell()
        return records, offset, False

    def discard(self, log: LogFile) -> None:
        """An adopted file whose records are all recovered: delete it."""
        if log.skipped:
            logger.warning(
                "Journal hand-off log %s: skipped %d byte(s) at its end (a write cut short "
                "by the death of its process).",
                log.path.name,
                log.skipped,
            )
        with self._lock:
            if log in self._adopted:
                self._adopted.remove(log)
        self.done(log)

    def release(self, log: LogFile) -> None:
        """Stop recovering an adopted file, keeping it for another writer."""
        with self._lock:
            if log in self._adopted:
                self._adopted.remove(log)
        self._close(log)

    def close(self) -> None:
        """Let every lock go; a file that may hold unstored records stays for adoption."""
        with self._lock:
            files = [f for f in (self._current, self._spare) if f is not None]
            files += self._adopted
            self._current = self._spare = None
            self._adopted = []
        for log in files:
            if not log.has_records:
                with contextlib.suppress(OSError):
                    log.path.unlink()
            self._close(log)

    def _close(self, log: LogFile) -> None:
        with self._lock:
            fd, log.fd = log.fd, -1
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)


def _read_header(handle: BinaryIO) -> tuple[str, ...] | None:
    line = handle.readline(_MAX_META)
    if not line.startswith(FORMAT + b" ") or not line.endswith(b"\n"):
        return None
    try:
        names = orjson.loads(line[len(FORMAT) + 1 :])
    except orjson.JSONDecodeError:
        return None
    return tuple(names) if isinstance(names, list) else None


def _read_frame(handle: BinaryIO, names: tuple[str, ...]) -> tuple[Record | None, bool]:
    """The next record; or None and whether bytes were left that do not make one."""
    head = handle.read(_FRAME.size)
    if len(head) < _FRAME.size:
        return None, bool(head)
    magic, meta_length, crc = _FRAME.unpack(head)
    if magic != MAGIC or meta_length > _MAX_META:
        return None, True
    meta = handle.read(meta_length)
    if len(meta) < meta_length or zlib.crc32(meta) != crc:
        return None, True
    try:
        values, body_length, answer_length = orjson.loads(meta)
        body = handle.read(body_length)
        answer = handle.read(answer_length)
        if len(body) < body_length or len(answer) < answer_length:
            return None, True
        known = {name: value for name, value in zip(names, values, strict=True)}
        kept = {name: known[name] for name in SCALAR_FIELDS if name in known}
        rec = Record(**kept, request_body=body, response_chunks=[answer] if answer else [])
    except (ValueError, TypeError):
        return None, True
    return rec, False
