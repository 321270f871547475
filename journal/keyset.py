"""Keyset pagination over the journal's order, (created_at, id), newest first.

A page starts after the last row of the previous one; compared as a row value, which
PostgreSQL and SQLite both compare lexicographically and match against the two-column
``journal_time`` index, so a page is one short index range at any depth (no OFFSET).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.db.models import BigIntegerField, DateTimeField, F, Func, Value

_CURSOR_TIME = "%Y%m%dT%H%M%S.%fZ"


@dataclass(frozen=True)
class Cursor:
    """A row's place in the list's order; ``20261125T223800.123456Z_42`` in URLs.

    No ``+`` or ``:`` (a ``+`` in a query string reads as a space).
    """

    created_at: dt.datetime
    id: int

    def encode(self) -> str:
        return f"{self.created_at.astimezone(dt.UTC).strftime(_CURSOR_TIME)}_{self.id}"

    @classmethod
    def decode(cls, text: str) -> Cursor:
        when, _, pk = text.partition("_")
        try:
            created_at = dt.datetime.strptime(when, _CURSOR_TIME).replace(tzinfo=dt.UTC)
            return cls(created_at, int(pk))
        except ValueError:
            raise ValueError(f"not a journal cursor: {text!r}") from None


def _row(*expressions: Any) -> Func:
    # "(a, b)".  The output type only satisfies Django: a row value has none.
    return Func(*expressions, template="(%(expressions)s)", output_field=DateTimeField())


def key() -> Func:
    """The row value ("created_at", "id") of the row being compared."""
    return _row(F("created_at"), F("id"))


def value(cursor: Cursor) -> Func:
    """The row value of a cursor, as query parameters."""
    return _row(
        Value(cursor.created_at, output_field=DateTimeField()),
        Value(cursor.id, output_field=BigIntegerField()),
    )
