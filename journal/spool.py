"""The journal's spool: rows that could not reach the database yet, in local files.

Each writer appends JSON lines to a file of its own, ``spool-<pid>-<random>.jsonl``, and
holds an exclusive ``flock`` on it while it lives.  A lock dies with its process, so any
writer can tell the files of dead processes (lockable) from those of live ones (not) and
take the former over: nothing left by a crashed worker waits for that worker to return.

A file is *sealed* once nothing more will be appended to it; sealed files are the ones
replayed.  Replay reads a file in batches and remembers how far it got, so the writer
can interleave replay with fresh records and resume after another outage.  Rows go
through the database with conflict-ignoring inserts, which is what makes replaying a
file twice (or replaying rows that did reach the database) harmless.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import secrets
import threading
from collections.abc import Generator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

logger = logging.getLogger("kodify.journal")

SPOOL_PREFIX = "spool-"
SPOOL_SUFFIX = ".jsonl"
# Completion events are spooled in a folder of their own under the requests' spool: a
# writer of an older version, adopting a dead process's files, must not take events for
# requests.
EVENT_SPOOL_SUBDIR = "events"
# Created under a name the replayers ignore and renamed once locked: otherwise another
# process could lock (and replay, and delete) a new file before its owner had locked it.
_CREATING_PREFIX = ".creating-"

Row = dict[str, Any]


@dataclass
class SpoolFile:
    """One locked spool file: ours, or a dead process's that we took over."""

    path: Path
    fd: int
    offset: int = 0  # bytes already replayed
    size: int = 0  # bytes written so far (ours) or found (taken over)
    unsynced: bool = False
    bad_lines: int = field(default=0, repr=False)


class Spool:
    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._lock = threading.Lock()  # appends come from the writer and the event loop
        self._current: SpoolFile | None = None
        self._sealed: list[SpoolFile] = []

    # -- writing ---------------------------------------------------------------------

    def append(self, rows: Iterable[Row], *, sync: bool = True) -> int:
        """Append rows as one write; ``sync`` makes them durable before returning.

        The event loop's overflow path passes ``sync=False`` (an fsync per request would
        stall every request in the worker); the writer syncs those on its next turn.
        """
        data = b"".join(orjson.dumps(row) + b"\n" for row in rows)
        if not data:
            return 0
        with self._lock:
            spool_file = self._current or self._create()
            self._current = spool_file
            try:
                write_all(spool_file.fd, data)
            except OSError:
                # Cut a partial write off, or every later line would be glued to it.
                with contextlib.suppress(OSError):
                    os.ftruncate(spool_file.fd, spool_file.size)
                raise
            spool_file.size += len(data)
            spool_file.unsynced = True
            if sync:
                os.fsync(spool_file.fd)
                spool_file.unsynced = False
        return data.count(b"\n")

    def sync(self) -> None:
        with self._lock:
            if self._current is not None and self._current.unsynced:
                os.fsync(self._current.fd)
                self._current.unsynced = False

    def seal(self) -> None:
        """Close the current file to appends, so it can be replayed; the next append
        starts a new one."""
        with self._lock:
            current, self._current = self._current, None
            if current is not None:
                if current.unsynced:
                    os.fsync(current.fd)
                    current.unsynced = False
                self._sealed.append(current)

    def has_unsealed(self) -> bool:
        current = self._current
        return current is not None and current.size > 0

    def _create(self) -> SpoolFile:
        path, fd = create_locked(self.directory, SPOOL_PREFIX, SPOOL_SUFFIX)
        return SpoolFile(path=path, fd=fd)

    # -- replaying -------------------------------------------------------------------

    def adopt_orphans(self) -> int:
        """Take over the files of processes that died; returns how many."""
        try:
            candidates = sorted(self.directory.glob(f"{SPOOL_PREFIX}*{SPOOL_SUFFIX}"))
        except OSError:
            return 0
        remove_abandoned_creations(self.directory)
        adopted = 0
        for path in candidates:
            spool_file = lock_orphan(path)
            if spool_file is not None:
                with self._lock:
                    self._sealed.append(spool_file)
                adopted += 1
        return adopted

    def sealed(self) -> list[SpoolFile]:
        with self._lock:
            return list(self._sealed)

    def batches(
        self, spool_file: SpoolFile, size: int
    ) -> Generator[tuple[list[Row], int], None, None]:
        """The rows of a sealed file from where replay stopped, ``size`` at a time, each
        batch with the offset just past it: the caller moves ``offset`` there once the
        batch is stored, so a replay cut short resumes at the first batch not stored.

        Lines that do not parse (the last one, torn by a crash mid-write) are skipped
        and counted.
        """
        with open(spool_file.path, "rb") as handle:
            handle.seek(spool_file.offset)
            batch: list[Row] = []
            end = spool_file.offset
            for line in handle:
                end += len(line)
                try:
                    row = orjson.loads(line)
                except orjson.JSONDecodeError:
                    row = None
                if not isinstance(row, dict):
                    spool_file.bad_lines += 1
                    continue
                batch.append(row)
                if len(batch) >= size:
                    yield batch, end
                    batch = []
            if batch or end != spool_file.offset:
                yield batch, end

    def discard(self, spool_file: SpoolFile) -> None:
        """Delete a fully replayed file and let its lock go."""
        if spool_file.bad_lines:
            logger.warning(
                "Journal spool %s: skipped %d unreadable line(s) (a write cut short by a crash).",
                spool_file.path.name,
                spool_file.bad_lines,
            )
        with self._lock:
            if spool_file in self._sealed:
                self._sealed.remove(spool_file)
        with contextlib.suppress(FileNotFoundError):
            spool_file.path.unlink()
        os.close(spool_file.fd)

    def release(self, spool_file: SpoolFile) -> None:
        """Stop replaying a file and let its lock go, keeping it for another writer."""
        with self._lock:
            if spool_file in self._sealed:
                self._sealed.remove(spool_file)
        os.close(spool_file.fd)

    def close(self) -> None:
        """Let every lock go; files with rows stay for the next writer to replay."""
        with self._lock:
            files = [*self._sealed, *([self._current] if self._current else [])]
            self._sealed, self._current = [], None
        for spool_file in files:
            with contextlib.suppress(OSError):
                if spool_file.unsynced:
                    os.fsync(spool_file.fd)
                if spool_file.size == 0 and spool_file.offset == 0:
                    spool_file.path.unlink()
            with contextlib.suppress(OSError):
                os.close(spool_file.fd)


def create_locked(directory: Path, prefix: str, suffix: str) -> tuple[Path, int]:
    """A new file ``<prefix><pid>-<random><suffix>`` in ``directory``, open for appending
    and locked (``flock``) for as long as this process keeps the descriptor."""
    directory.mkdir(parents=True, exist_ok=True)
    name = f"{os.getpid()}-{secrets.token_hex(6)}{suffix}"
    creating = directory / f"{_CREATING_PREFIX}{name}"
    fd = os.open(creating, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        path = directory / f"{prefix}{name}"
        os.rename(creating, path)
    except OSError:
        os.close(fd)
        with contextlib.suppress(OSError):
            creating.unlink()
        raise
    return path, fd


def remove_abandoned_creations(directory: Path) -> None:
    """Files of processes that died between creating and naming one (still empty)."""
    with contextlib.suppress(OSError):
        for path in directory.glob(f"{_CREATING_PREFIX}*"):
            spool_file = lock_orphan(path)
            if spool_file is not None:
                with contextlib.suppress(OSError):
                    path.unlink()
                os.close(spool_file.fd)


def lock_orphan(path: Path) -> SpoolFile | None:
    """Lock a spool file whose owner is gone; None when it lives or the file is gone."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        # Another replayer may have finished and deleted it between our open and lock.
        if os.fstat(fd).st_ino != os.stat(path).st_ino:
            raise FileNotFoundError(path)
        return SpoolFile(path=path, fd=fd, size=os.fstat(fd).st_size)
    except OSError:
        os.close(fd)
        return None


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def append_lines(path: Path, rows: Iterable[Row]) -> None:
    """Append rows to a plain JSON-lines file (the rejected rows), durably."""
    data = b"".join(orjson.dumps(row, default=str) + b"\n" for row in rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
