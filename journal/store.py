"""Rows into the journal's tables, and what a failure to store them means.

Two kinds of rows are stored: requests (``journal.models.Entry``, a batch per turn of the
writer, by COPY on PostgreSQL) and Tabby's completion events (``journal.models.Event``,
a few per completion, with the ORM).  Both go through :func:`insert_batch`, which gives
every batch the same treatment:

* A batch is written in one transaction.  When the database refuses it because of one
  row (too long, not null…), the batch is stored again row by row and the refused rows
  are handed back to the caller, to be set aside: one bad row must not hold the rest of
  the journal back.
* When the database is unavailable (see :func:`is_unavailable`), nothing is refused:
  the caller keeps the whole batch (the writer spools it) until the database returns.
* A batch may be stored twice: its commit went through but the acknowledgement was lost,
  or it comes back from the spool.  Every store can skip the rows already stored
  (``skip_stored``), so such a batch is not doubled.

The helper process (``journal/converter.py``) uses the stores and the error
classification too, which is why they live apart from the writer's thread loop.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any, Protocol, TypeVar

import psycopg
from django import db
from django.core.management import call_command
from django.db import connections, transaction

from journal.router import JOURNAL_ALIAS
from journal.spool import Row

TABLE = "journal_entry"

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


class Store(Protocol):
    """What :func:`insert_batch` needs of a store."""

    def insert(self, rows: list[Row], *, skip_stored: bool) -> None: ...

    def close(self) -> None: ...


# -- the stores -----------------------------------------------------------------------


class EntryStore:
    """Request rows into the journal table of one database alias, with the ORM, on the
    calling thread's connection."""

    def __init__(self, alias: str) -> None:
        self.alias = alias

    def insert(self, rows: list[Row], *, skip_stored: bool) -> None:
        from journal.models import Entry
        from journal.rollups import count_entries

        names = set(_columns())
        objects = Entry.objects.using(self.alias)
        with transaction.atomic(using=self.alias):
            if skip_stored:
                # Not bulk_create(ignore_conflicts=True): SQLite's INSERT OR IGNORE also
                # skips NOT NULL and CHECK failures, and a refused row would vanish unseen.
                wanted = {row.get("request_id") for row in rows}
                stored = objects.filter(request_id__in=wanted).values_list("request_id", flat=True)
                rows = _unseen(rows, set(stored))
            entries = [Entry(**{k: v for k, v in row.items() if k in names}) for row in rows]
            objects.bulk_create(entries)
            count_entries(self.alias, rows)

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


class PostgresEntryStore(EntryStore):
    """COPY, on the driver's connection: the ORM's bulk_create costs several times the
    CPU, taken from the event loop that shares this process's GIL."""

    def insert(self, rows: list[Row], *, skip_stored: bool) -> None:
        from journal.rollups import count_entries

        connection = connections[self.alias]
        connection.ensure_connection()
        raw: psycopg.Connection[Any] = connection.connection
        columns = ", ".join(_columns())
        values = _values
        # Django's transaction, not the driver's: the rollups below use the ORM on this
        # connection, and row locks (select_for_update) need Django to know of it.
        with transaction.atomic(using=self.alias), raw.cursor() as cursor:
            if skip_stored:
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
            if skip_stored:
                cursor.execute(
                    f"INSERT INTO {TABLE} ({columns}) SELECT {columns} "  # noqa: S608
                    "FROM journal_entry_load ON CONFLICT (request_id) DO NOTHING "
                    "RETURNING request_id"
                )
                stored = {request_id for (request_id,) in cursor.fetchall()}
                rows = [row for row in rows if row.get("request_id") in stored]
            count_entries(self.alias, rows)


def store_for(alias: str) -> EntryStore:
    """The fastest store of request rows that the alias's database allows."""
    vendor = connections[alias].vendor
    return PostgresEntryStore(alias) if vendor == "postgresql" else EntryStore(alias)


class EventStore:
    """Completion events into the journal with the ORM, on the calling thread's connection
    (a few per completion: not worth COPY)."""

    def __init__(self, alias: str) -> None:
        self.alias = alias

    def insert(self, rows: list[Row], *, skip_stored: bool) -> None:
        from journal.models import Event
        from journal.rollups import count_events

        names = _event_columns()
        objects = Event.objects.using(self.alias)
        with transaction.atomic(using=self.alias):
            if skip_stored:
                rows = _unstored_events(objects, rows)
            if rows:
                events = [Event(**{k: v for k, v in row.items() if k in names}) for row in rows]
                objects.bulk_create(events)
                count_events(self.alias, rows)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            connections[self.alias].close()


def _unseen(rows: list[Row], seen: set[Any]) -> list[Row]:
    """The rows whose request id is neither in ``seen`` nor earlier in the batch."""
    unseen: list[Row] = []
    for row in rows:
        request_id = row.get("request_id")
        if request_id not in seen:
            seen.add(request_id)
            unseen.append(row)
    return unseen


def _unstored_events(objects: Any, rows: list[Row]) -> list[Row]:
    """The rows not in the table yet, nor earlier in the batch.

    Events have no unique key.  An event's time is kept to the microsecond, so (time,
    kind, response id, choice) tells a replayed event from another; the lookup reads the
    batch's ids through the ``journal_event_response`` index.
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


# -- one batch, whatever the database says ----------------------------------------------


@dataclass
class Inserted:
    """What became of a batch given to :func:`insert_batch`.

    ``unavailable``: the error when the database could not be reached; the batch may be
    stored in part, so the caller keeps it whole for a later, row-skipping try.
    ``refused``: the rows the database refused, each as ``{"error": …, <kind>: row}``;
    the others are stored.
    """

    unavailable: BaseException | None = None
    refused: list[Row] = field(default_factory=list)


def insert_batch(store: Store, rows: list[Row], *, skip_stored: bool, kind: str) -> Inserted:
    """Store ``rows``; ``kind`` ("row", "event") names them in :attr:`Inserted.refused`."""
    if not rows:
        return Inserted()
    try:
        store.insert(rows, skip_stored=skip_stored)
        return Inserted()
    except Exception as exc:
        if is_duplicate(exc) and not skip_stored:
            # A request id already stored (rows sent again after a lost acknowledgement):
            # the row-skipping insert stores the others.
            return insert_batch(store, rows, skip_stored=True, kind=kind)
        if not is_unavailable(exc):
            return _isolate(store, rows, kind)
        store.close()
        first = exc
    # A connection that went stale (a restarted server, an idle timeout) fails once and
    # then works: one more try on a fresh one before declaring an outage.  The failed try
    # may have committed, hence row-skipping.
    try:
        store.insert(rows, skip_stored=True)
        return Inserted()
    except Exception as exc:
        if is_unavailable(exc):
            store.close()
            return Inserted(unavailable=first)
        return _isolate(store, rows, kind)


def _isolate(store: Store, rows: list[Row], kind: str) -> Inserted:
    """A batch the database refused: store it row by row, and tell which rows it refused.

    Should the database go away meanwhile, nothing counts as refused: the whole batch is
    kept, and the rows are tried again once it is back.
    """
    refused: list[Row] = []
    for row in rows:
        try:
            store.insert([row], skip_stored=True)
        except Exception as exc:
            if is_unavailable(exc):
                store.close()
                return Inserted(unavailable=exc)
            refused.append({"error": describe(exc), kind: row})
    return Inserted(refused=refused)


# -- columns and values ---------------------------------------------------------------


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


@cache
def _event_columns() -> frozenset[str]:
    from journal.models import Event

    return frozenset(field.attname for field in Event._meta.concrete_fields)


def _values(row: Row) -> list[Any]:
    defaults, empty_is_null = _field_table()
    get = row.get
    values = [get(name, default) for name, default in defaults]
    for index in empty_is_null:
        if values[index] == "":
            values[index] = None
    return values


def decode_rows(rows: list[Row]) -> tuple[list[Row], list[Row]]:
    """Request rows read back from the spool, where their datetimes are ISO strings;
    and the rows that do not decode, as ``{"error": …, "row": row}``."""
    decoded: list[Row] = []
    failed: list[Row] = []
    names = _datetime_columns()
    for row in rows:
        try:
            for name in names:
                value = row.get(name)
                if isinstance(value, str):
                    row[name] = datetime.fromisoformat(value)
            decoded.append(row)
        except (TypeError, ValueError) as exc:
            failed.append({"error": describe(exc), "row": row})
    return decoded, failed


# -- errors ---------------------------------------------------------------------------


class HelperReport(Exception):
    """An outage as the helper process saw it (its description only)."""


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


T = TypeVar("T")


def rows_or_reasons(
    items: Sequence[T], build: Callable[[T], Row], *, kind: str, fields: Callable[[T], Row]
) -> tuple[list[Row], list[Row]]:
    """The rows ``build`` makes of ``items``; and the items it could not make one of, as
    ``{"error": …, kind: fields(item)}``, to be set aside rather than lost."""
    rows: list[Row] = []
    failed: list[Row] = []
    for item in items:
        try:
            rows.append(build(item))
        except Exception as exc:
            failed.append({"error": describe(exc), kind: fields(item)})
    return rows, failed


def describe(exc: BaseException) -> str:
    """The error's kind and first line: enough to act on, never a row's contents."""
    if isinstance(exc, HelperReport):
        return str(exc)  # described in the helper process already
    sqlstate = next(filter(None, (getattr(e, "sqlstate", None) for e in _causes(exc))), None)
    first_line = (str(exc).strip().splitlines() or [""])[0][:200]
    kind = type(exc).__name__ + (f" {sqlstate}" if sqlstate else "")
    return f"{kind}: {first_line}" if first_line else kind
