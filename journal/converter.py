"""Records into rows, and rows into the database, in a helper process, off the server's GIL.

Turning a record into a row (decoding the bodies, reassembling a stream, masking secrets)
costs tens to hundreds of microseconds of Python per request.  In the writer's thread that
time is taken from the event loop that serves requests, because both hold the same GIL;
measured on the proxy benchmark it cost 12-22 % of a worker's throughput.  One helper
process per server process does it instead, on another core, and stores the rows too (the
COPY costs the writer thread another ~20 us a row plus a GIL hand-over at every wait on
the database): the server then only pickles records and unpickles the live view's short
summaries (``KODIFY_JOURNAL_CONVERTER=process``, the default).  What the helper cannot store
(the database is away, a row is refused) comes back as rows, and the writer deals with it
as before: spool, probe, replay, isolate.

The helper is started (spawned, not forked: the server runs threads) on the first batch.
It dies with its server process, however that one ends: on Linux the kernel kills it
when its parent goes (``PR_SET_PDEATHSIG``), and elsewhere a thread of its own notices
the parent is gone (:func:`_start_helper`); it honours SIGTERM whatever signals its
parent blocked or ignored.  A server process killed with ``kill -9`` used to leave it
behind, orphaned and deaf to SIGTERM.
If it dies or cannot start, batches are converted in the writer's thread until a new one
is up, so no record waits on it: :func:`rows_here` does that, and :func:`rows_of` pairs
the helper's answers with their records.  Either way a record that cannot become a row
comes back with the reason, for the writer to set aside.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import ctypes
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from typing import Any

from django.conf import settings

from journal.record import Record
from journal.store import describe, is_duplicate, is_unavailable, rows_or_reasons, store_for

logger = logging.getLogger("kodify.journal")

Row = dict[str, Any]
# What a batch's conversion gives back per record: a row, or why it could not be made.
Converted = tuple[bool, Any]
BuildRow = Callable[[Record], Row]

RESTART_AFTER_SECONDS = 30.0
# How often the helper checks that its parent lives, where the kernel cannot tell it.
PARENT_CHECK_SECONDS = 1.0
_PR_SET_PDEATHSIG = 1
BATCH_TIMEOUT_SECONDS = 60.0
# The settings journal.rows reads; sent with each batch, so that the helper always works
# with the server's current values (tests change them in the server process).
_ROW_SETTINGS = (
    "KODIFY_JOURNAL_MAX_TEXT",
    "KODIFY_JOURNAL_REDACT_SKIP",
    "KODIFY_JOURNAL_REDACT_EXTRA",
)


class ProcessConverter:
    def __init__(self) -> None:
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None
        self._retry_at = 0.0

    def convert(self, records: list[Record]) -> list[Converted] | None:
        """Each record's row or error, or None when the helper is not available now."""
        result: list[Converted] | None = self._call(convert_batch, records, _row_settings())
        return result

    def store(self, records: list[Record], alias: str) -> Stored | None:
        """Convert and store a batch in the helper; None when the helper is not available."""
        database = _database_settings(alias)
        result: Stored | None = self._call(
            convert_and_store, records, _row_settings(), alias, database
        )
        return result

    def _call(self, function: Callable[..., Any], *args: Any) -> Any:
        """``function(*args)`` in the helper; None when there is no working helper now."""
        pool = self._ready_pool()
        if pool is None:
            return None
        try:
            return pool.submit(function, *args).result(timeout=BATCH_TIMEOUT_SECONDS)
        except (BrokenProcessPool, OSError, concurrent.futures.TimeoutError) as exc:
            logger.warning(
                "Journal: the helper process failed (%s); the server process converts "
                "and stores for now.",
                type(exc).__name__,
            )
            self._discard()
            return None

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def _ready_pool(self) -> concurrent.futures.ProcessPoolExecutor | None:
        if self._pool is None and time.monotonic() >= self._retry_at:
            try:
                self._pool = concurrent.futures.ProcessPoolExecutor(
                    max_workers=1,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_start_helper,
                    initargs=(
                        os.environ.get("DJANGO_SETTINGS_MODULE", "kodify_site.settings"),
                        os.getpid(),
                    ),
                )
            except OSError as exc:
                logger.warning("Journal: no conversion helper process (%s).", exc)
                self._retry_at = time.monotonic() + RESTART_AFTER_SECONDS
        return self._pool

    def _discard(self) -> None:
        pool, self._pool = self._pool, None
        self._retry_at = time.monotonic() + RESTART_AFTER_SECONDS
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


# -- in the server process ------------------------------------------------------------


def rows_here(
    records: Sequence[Record], build_row: BuildRow | None = None
) -> tuple[list[Row], list[Row]]:
    """The rows of ``records``, made in the calling thread with ``build_row`` (by default
    ``journal.rows.build_row``); and the records that could not become one, as
    ``{"error": …, "record": fields}``."""
    try:
        build = build_row or _default_build_row()
    except Exception as exc:  # journal/rows.py broken: keep the raw records at least
        build = _failing(exc)
    return rows_or_reasons(records, build, kind="record", fields=record_fields)


def rows_of(records: Sequence[Record], converted: list[Converted]) -> tuple[list[Row], list[Row]]:
    """:func:`rows_here` for a batch the helper converted: ``converted`` is its answer."""
    rows: list[Row] = []
    failed: list[Row] = []
    for rec, (ok, result) in zip(records, converted, strict=True):
        if ok:
            rows.append(result)
        else:
            failed.append({"error": result, "record": record_fields(rec)})
    return rows, failed


def record_fields(rec: Record) -> Row:
    """A record as JSON can hold it, for the file of records set aside."""
    fields = asdict(rec)
    fields["request_body"] = rec.request_body.decode("utf-8", "replace")
    fields["response_chunks"] = [c.decode("utf-8", "replace") for c in rec.response_chunks]
    return fields


def _default_build_row() -> BuildRow:
    from journal.rows import build_row

    return build_row


def _failing(error: Exception) -> BuildRow:
    def build_row(rec: Record) -> Row:
        raise error

    return build_row


def _database_settings(alias: str) -> dict[str, Any]:
    """The server's connection settings for ``alias``: the helper must write where the
    server would (under tests the database is renamed after start-up; a test may add an
    alias of its own)."""
    from django.db import connections

    return dict(connections[alias].settings_dict)


def _row_settings() -> dict[str, Any]:
    return {name: getattr(settings, name) for name in _ROW_SETTINGS}


# -- in the helper process ------------------------------------------------------------


def _start_helper(settings_module: str, server_pid: int | None = None) -> None:
    if server_pid is not None:
        die_with(server_pid)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", settings_module)
    import django

    django.setup()


def die_with(server_pid: int) -> None:
    """End this process when ``server_pid`` (its parent) ends, and on SIGTERM."""
    # A signal blocked or ignored in the spawning thread stays so across fork and exec.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    # Also where prctl is missing, and should the parent have died before the call above
    # (the helper is then a child of init, or of a subreaper, already).
    watcher = threading.Thread(
        target=_watch_parent, args=(server_pid,), name="kodify-journal-parent", daemon=True
    )
    watcher.start()
    if os.getppid() != server_pid:
        os._exit(1)


def _watch_parent(server_pid: int) -> None:
    while os.getppid() == server_pid:
        time.sleep(PARENT_CHECK_SECONDS)  # a poll of the parent, not a synchronisation
    os._exit(1)


@dataclass
class Stored:
    """What the helper did with a batch.

    ``outcome``: "stored" (``rows`` are the live view's summaries), "unavailable" (the
    database is away: ``rows`` to spool, ``error`` says why), "refused" (the database
    refused the batch: ``rows`` for the writer to store one by one) or "elsewhere" (the
    helper does not know the database: ``rows`` for the writer).  ``failed``: records that
    could not become rows, with the reason.
    """

    outcome: str
    rows: list[Row]
    failed: list[tuple[int, str]] = field(default_factory=list)
    error: str = ""


def convert_and_store(
    records: list[Record], row_settings: dict[str, Any], alias: str, database: dict[str, Any]
) -> Stored:
    from journal import live

    converted = convert_batch(records, row_settings)
    rows = [result for ok, result in converted if ok]
    failed = [(index, result) for index, (ok, result) in enumerate(converted) if not ok]
    if not _use_database(alias, database):
        return Stored("elsewhere", rows, failed)
    store = store_for(alias)
    for skip_stored in (False, True):
        try:
            store.insert(rows, skip_stored=skip_stored)
            return Stored("stored", [live.summarize(row) for row in rows], failed)
        except Exception as exc:
            store.close()
            if is_duplicate(exc) and not skip_stored:
                continue  # rows sent again after a lost acknowledgement
            if not is_unavailable(exc):
                return Stored("refused", rows, failed, describe(exc))
            error = describe(exc)
            # A stale connection fails once and then works; the failed try may have
            # committed, hence row-skipping.
    return Stored("unavailable", rows, failed, error)


_databases: dict[str, dict[str, Any]] = {}


def _use_database(alias: str, database: dict[str, Any]) -> bool:
    """Point the helper's ``alias`` at the server's database; False if it cannot."""
    from django.db import connections

    if _databases.get(alias) == database:
        return True
    try:
        if alias in connections.settings:
            connections[alias].close()
            del connections[alias]
        connections.settings[alias] = database
    except Exception:  # an engine this process cannot load: the writer stores instead
        logger.exception("Journal helper: cannot use the database %r", alias)
        return False
    _databases[alias] = database
    return True


def convert_batch(records: list[Record], row_settings: dict[str, Any]) -> list[Converted]:
    from journal import redact
    from journal.rows import build_row

    changed = False
    for name, value in row_settings.items():
        if getattr(settings, name) != value:
            setattr(settings, name, value)
            changed = True
    if changed:
        redact.reset()
    converted: list[Converted] = []
    for rec in records:
        try:
            converted.append((True, build_row(rec)))
        except Exception as exc:
            converted.append((False, f"{type(exc).__name__}: {str(exc)[:200]}"))
    return converted
