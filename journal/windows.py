"""A filtered page on PostgreSQL, newest first, in bounded time.

The list asks for the newest fifty rows that match.  When one index serves the whole
filter in that order ((model, created_at) for a model, say), PostgreSQL reads exactly
those rows.  Otherwise (a search, two filters, a status class) it tends to walk an index
in time order and test each row it passes, betting the matches are common: right for a
common word, a whole-table read for a rare one or for two filters that never meet
(seconds at a million rows; minutes when each test tokenized the row's texts).

So such a page is gathered window by window, going back from the cursor: each window is
a known number of rows of the time index (a few hundred first, then eight times more),
and its query may use bitmap scans only (the window's part of the time index, the GIN
index, the filters' indexes, intersected as PostgreSQL sees fit), never that walk.  A
common match fills the page from the first window; a rare one goes through a handful of
windows, then, once the newest rows are known not to hold it, to the indexes alone.
"""

from __future__ import annotations

from typing import Any

from django.db import connections, transaction
from django.db.models import QuerySet
from django.db.models.lookups import (
    GreaterThan,
    GreaterThanOrEqual,
    LessThan,
    LessThanOrEqual,
    Lookup,
)

from journal.keyset import Cursor, key, value
from journal.models import Entry

WINDOWS = (256, 2048, 16_384, 131_072)  # rows of the time index; then no window
# Planner settings for the window queries, within their own transaction only.
PLANNER = (
    # No walking an index in time order, testing each row: the plan that reads the
    # whole table for a rare match.  Bitmap scans remain: the time index (a window's
    # rows), the GIN index, the filters' indexes, alone or intersected.
    "SET LOCAL enable_indexscan = off",
    "SET LOCAL work_mem = '64MB'",  # keeps a common word's GIN bitmap exact
    "SET LOCAL jit = off",  # compiling would take longer than these queries
)


def windowed_page(
    matches: QuerySet[Any, Any],
    *,
    start: Cursor | None,
    newest_first: bool,
    need: int,
    alias: str,
) -> list[Any]:
    """Up to ``need`` rows of ``matches`` (the filtered queryset) past ``start``.

    Newest first from ``start`` (None: from the newest row), or oldest first going to
    newer rows; windows count all rows, whether they match or not.
    """
    order = ("-created_at", "-id") if newest_first else ("created_at", "id")
    beyond = LessThan if newest_first else GreaterThan
    within = GreaterThanOrEqual if newest_first else LessThanOrEqual
    found: list[Any] = []
    anchor = start
    for size in (*WINDOWS, None):
        edge = _edge(anchor, size, order, beyond) if size else None
        window = matches if anchor is None else matches.filter(beyond(key(), value(anchor)))
        if edge is not None:
            window = window.filter(within(key(), value(edge)))
        found += _planned(window.order_by(*order)[: need - len(found)], alias)
        if len(found) >= need or edge is None:
            return found
        anchor = edge
    return found  # not reached: the last window has no edge


def _edge(
    anchor: Cursor | None, size: int, order: tuple[str, str], beyond: type[Lookup[Any]]
) -> Cursor | None:
    """The cursor ``size`` rows beyond ``anchor``, or None when fewer rows are left.

    Read from the time index alone (an index-only scan): no row is visited.
    """
    rows = Entry.objects.all()
    if anchor is not None:
        rows = rows.filter(beyond(key(), value(anchor)))
    edge = rows.order_by(*order).values_list("created_at", "id")[size - 1 : size]
    found = list(edge)
    return Cursor(*found[0]) if found else None


def _planned(rows: QuerySet[Any, Any], alias: str) -> list[Any]:
    with transaction.atomic(using=alias), connections[alias].cursor() as cursor:
        for setting in PLANNER:
            cursor.execute(setting)
        return list(rows)
