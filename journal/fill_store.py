"""Writing the filler's rows into the journal database: binary COPY on PostgreSQL, bulk
inserts elsewhere.

Into an empty journal the secondary indexes (the GIN full-text one above all, which costs
more per row than the COPY itself) are dropped first and built once at the end, which is
much faster than keeping them up to date row by row.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from django.db import connections

from journal.fill import EVENT_FIELDS, FIELDS, Filler
from journal.models import Entry, Event

# (rows done, rows in all, a note): how a fill reports its progress.
Progress = Callable[[int, int, str], None]


def fill_postgresql(alias: str, filler: Filler, chunk: int, progress: Progress) -> int:
    connection = connections[alias]
    connection.ensure_connection()
    raw = connection.connection
    entry_table, event_table = Entry._meta.db_table, Event._meta.db_table
    with raw.cursor() as cursor:
        # Benchmark rows: a crash may lose the last chunk, and the index builds may use
        # more memory than the server's default for maintenance.
        cursor.execute("SET synchronous_commit = off")
        cursor.execute("SET maintenance_work_mem = '256MB'")
        cursor.execute(f"SELECT EXISTS (SELECT 1 FROM {entry_table})")  # noqa: S608
        row = cursor.fetchone()
        empty = not (row and row[0])
    entry_types = _column_types(raw, entry_table, FIELDS)
    event_types = _column_types(raw, event_table, EVENT_FIELDS)
    dropped = _drop_indexes(raw, (entry_table, event_table)) if empty else []
    events = done = 0
    try:
        # Binary COPY: the server parses no text, the client formats in C; about twice
        # as fast as text COPY here.
        entry_copy = f"COPY {entry_table} ({', '.join(FIELDS)}) FROM STDIN (FORMAT BINARY)"
        event_copy = f"COPY {event_table} ({', '.join(EVENT_FIELDS)}) FROM STDIN (FORMAT BINARY)"
        for entries, new_events in filler.chunks(chunk):
            with raw.transaction(), raw.cursor() as cursor:
                with cursor.copy(entry_copy) as copy:
                    copy.set_types(entry_types)
                    for values in entries:
                        copy.write_row(values)
                with cursor.copy(event_copy) as copy:
                    copy.set_types(event_types)
                    for values in new_events:
                        copy.write_row(values)
            done += len(entries)
            events += len(new_events)
            progress(done, filler.rows, "")
    finally:
        if dropped:
            # The full-text index costs most: to_tsvector reads every text (about half a
            # millisecond per row of code here), more than the COPY itself.
            progress(done, filler.rows, f"; building {len(dropped)} indexes")
            with raw.cursor() as cursor:
                for definition in dropped:
                    cursor.execute(definition)
    with raw.cursor() as cursor:
        cursor.execute(f"ANALYZE {entry_table}")
        cursor.execute(f"ANALYZE {event_table}")
    return events


def _column_types(raw: Any, table: str, columns: Sequence[str]) -> list[int]:
    """The type oids of ``columns``, which binary COPY needs to be told."""
    with raw.cursor() as cursor:
        cursor.execute(
            "SELECT attname, atttypid::int FROM pg_attribute "
            "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
            [table],
        )
        oids = dict(cursor.fetchall())
    return [oids[column] for column in columns]


def _drop_indexes(raw: Any, tables: Sequence[str]) -> list[str]:
    """Drop the tables' indexes that back no constraint; their definitions, to rebuild."""
    with raw.cursor() as cursor:
        cursor.execute(
            "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) "
            "FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid "
            "WHERE t.relname = ANY(%s) AND t.relnamespace = 'public'::regnamespace "
            "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)",
            [list(tables)],
        )
        found = cursor.fetchall()
        for name, _ in found:
            cursor.execute(f"DROP INDEX {name}")
    return [definition for _, definition in found]


def _entry_object(names: Sequence[str], values: Sequence[Any]) -> Entry:
    fields = dict(zip(names, values, strict=True))
    fields["client_ip"] = str(fields["client_ip"])  # the ORM takes text, COPY an address
    return Entry(**fields)


def fill_orm(alias: str, filler: Filler, chunk: int, progress: Progress) -> int:
    names = [f.name for f in Entry._meta.concrete_fields if f.name != "id"]
    event_names = [f.name for f in Event._meta.concrete_fields if f.name != "id"]
    events = done = 0
    for entries, new_events in filler.chunks(chunk):
        Entry.objects.using(alias).bulk_create(
            [
                Entry(**{**dict(zip(names, values, strict=True)), "client_ip": str(values[6])})
                for values in entries
            ],
            batch_size=2000,
        )
        Event.objects.using(alias).bulk_create(
            [Event(**dict(zip(event_names, values, strict=True))) for values in new_events],
            batch_size=2000,
        )
        done += len(entries)
        events += len(new_events)
        progress(done, filler.rows, "")
    return events
