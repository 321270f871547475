"""Reads for the journal's console: the list, one request, the CSV export, the dropdowns.

Everything here must stay fast with millions of rows (the list's target is 300 ms at one
million on PostgreSQL), hence:

* keyset pagination on ``(created_at, id)``, compared as a row value so that the
  ``journal_time`` index (or a filter's ``(column, created_at)`` index) is walked from the
  cursor, and never an OFFSET (``journal.keyset``);
* on PostgreSQL, a page that no single index serves in order (a search, two filters, a
  status class) is gathered window by window (``journal.windows``);
* no ``COUNT(*)``: the unfiltered list shows PostgreSQL's own estimate (``reltuples``), a
  filtered one only says whether there is more;
* the list never reads the prompt or the answer, only a short prefix of the answer;
* the dropdowns' values come from a loose index scan, cached for a minute.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from typing import Any

from django.core.cache import cache
from django.db import connections
from django.db.models import BooleanField, Expression, Q, QuerySet
from django.db.models.expressions import RawSQL
from django.db.models.functions import Substr
from django.db.models.lookups import GreaterThan, LessThan

from accounts.models import ApiToken, ApiUser
from journal.keyset import Cursor, key, value
from journal.models import Entry, Event
from journal.router import journal_database
from journal.search import SEARCH_MATCH_SQL, fts5_match_sql
from journal.search_syntax import to_fts5
from journal.windows import windowed_page

PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
PREVIEW_CHARS = 120
EXACT_COUNT_UP_TO = 10_000  # below this a bounded COUNT is cheap, and exact
CHOICES_CACHE_SECONDS = 60
MAX_CHOICES = 200
EXPORT_CHUNK_SIZE = 2000
MAX_DETAIL_EVENTS = 500

# What the list shows; the texts are read by the detail page and the export only.
LIST_FIELDS = (
    "id",
    "created_at",
    "request_id",
    "user_id",
    "username",
    "client_name",
    "client_version",
    "endpoint",
    "feature",
    "model",
    "language",
    "stream",
    "status",
    "cancelled",
    "ttft_ms",
    "latency_ms",
    "prompt_tokens",
    "completion_tokens",
    "truncated",
    "redactions",
)
EXPORT_FIELDS = (
    "created_at",
    "request_id",
    "client_request_id",
    "username",
    "user_id",
    "token_id",
    "auth_mode",
    "client_ip",
    "user_agent",
    "client_name",
    "client_version",
    "endpoint",
    "feature",
    "model",
    "upstream",
    "language",
    "stream",
    "status",
    "cancelled",
    "error",
    "ttft_ms",
    "latency_ms",
    "prompt_tokens",
    "completion_tokens",
    "response_id",
    "redactions",
    "truncated",
    "request_body",
    "response_text",
)
# The dropdowns' columns, each the head of a (column, created_at) index.
CHOICE_COLUMNS = ("model", "endpoint", "client_name")


@dataclass(frozen=True)
class EntryFilters:
    """The list's filters; empty values filter nothing."""

    user: str = ""  # user name, as the journal recorded it
    user_id: int | None = None
    model: str = ""
    endpoint: str = ""
    feature: str = ""
    status: str = ""  # "500", a class ("5xx") or "cancelled"
    client: str = ""  # client_name: the editor plugin
    since: dt.date | None = None  # inclusive, UTC days
    until: dt.date | None = None  # inclusive
    q: str = ""  # full text over the prompt and the answer

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> EntryFilters:
        names = {field.name for field in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names and v not in (None, "")})

    @property
    def active(self) -> bool:
        return self != EntryFilters()


class InvalidStatus(ValueError):
    pass


def parse_status(value: str) -> Q:
    """``500`` exactly, ``5xx`` the class, ``errors`` (400 and above) or ``cancelled``
    (the client went away)."""
    value = value.strip().lower()
    if value == "cancelled":
        return Q(cancelled=True)
    if value == "errors":
        return Q(status__gte=400)
    if len(value) == 3 and value[0] in "12345" and value[1:] == "xx":
        low = int(value[0]) * 100
        # A range: the (status, created_at) index finds the rows, not in the list's order.
        return Q(status__gte=low, status__lt=low + 100)
    if value.isdigit() and 100 <= int(value) <= 599:
        return Q(status=int(value))
    raise InvalidStatus(f"{value!r} is not a status: use e.g. 404, 5xx, errors or cancelled")


def day_summary(day: dt.date) -> dict[str, int]:
    """One UTC day's requests, errors (status 400 and above), users and tokens seen,
    from the day's rollups."""
    from journal.models import DailyRollup

    rows = DailyRollup.objects.using(journal_database()).filter(
        period_start=_day_start(day), requests__gt=0
    )
    found = {"requests": 0, "errors": 0, "users": 0, "tokens": 0}
    for dimension, name, requests, errors in rows.filter(
        dimension__in=("all", "user", "token")
    ).values_list("dimension", "value", "requests", "errors"):
        if dimension == "all":
            found.update(requests=requests, errors=errors)
        elif name:
            found["users" if dimension == "user" else "tokens"] += 1
    return found


def filtered_entries(filters: EntryFilters) -> QuerySet[Entry]:
    entries = Entry.objects.all()
    if filters.user_id is not None:
        entries = entries.filter(user_id=filters.user_id)
    if filters.user:
        entries = entries.filter(_user(filters.user))
    if filters.model:
        entries = entries.filter(model=filters.model)
    if filters.endpoint:
        entries = entries.filter(endpoint=filters.endpoint)
    if filters.feature:
        entries = entries.filter(feature=filters.feature)
    if filters.status:
        entries = entries.filter(parse_status(filters.status))
    if filters.client:
        entries = entries.filter(client_name=filters.client)
    if filters.since:
        entries = entries.filter(created_at__gte=_day_start(filters.since))
    if filters.until:
        entries = entries.filter(created_at__lt=_day_start(filters.until + dt.timedelta(days=1)))
    if filters.q:
        entries = entries.filter(_search(filters.q, entries.db))
    return entries


def _user(name: str) -> Q:
    """By the API user's id when the name is a current API user's: that column is indexed
    (with the time), the name is not, and the id also finds the rows a user made before a
    rename.  Other names (one-token mode, deleted users) are matched as recorded."""
    user_id = ApiUser.objects.filter(username=name).values_list("pk", flat=True).first()
    return Q(user_id=user_id) if user_id is not None else Q(username=name)


def _day_start(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC)


def _search(q: str, alias: str) -> Q | Expression:
    vendor = connections[alias].vendor
    if vendor == "postgresql":
        # The stored document the GIN index covers (journal.search, migration 0002).
        return RawSQL(SEARCH_MATCH_SQL, [q], output_field=BooleanField())  # noqa: S611 - q is a param
    if vendor == "sqlite":
        return _fts5_search(q)
    return Q(request_body__icontains=q) | Q(response_text__icontains=q)


def _fts5_search(q: str) -> Q | Expression:
    """The rows of the FTS5 index (migration 0005) that the query finds: a condition on
    the id, so the list keeps its order and keyset pages (the index knows no time)."""
    query = to_fts5(q)
    if query.finds_nothing:
        return Q(pk__in=[])  # as PostgreSQL, for a query without a word: no row, no SQL
    sql, params = fts5_match_sql(query.matching, query.lacking, Entry._meta.db_table)
    return RawSQL(sql, params, output_field=BooleanField())  # noqa: S611 - q is a param


# -- keyset pagination (journal.keyset) ------------------------------------------------------


@dataclass(frozen=True)
class EntryPage:
    rows: list[dict[str, Any]]
    older: str | None  # cursor for ?before=, None on the last page
    newer: str | None  # cursor for ?after=, None on the first page


def entry_page(
    filters: EntryFilters,
    *,
    before: Cursor | None = None,
    after: Cursor | None = None,
    limit: int = PAGE_SIZE,
) -> EntryPage:
    """One page, newest first: the ``limit`` rows just older than ``before`` (or newer
    than ``after``, or the newest ones).

    One row more than shown is read to know whether there is another page that way; the
    other way there is one when the page was reached through a cursor (the cursor's row
    came from there).
    """
    limit = max(1, min(limit, MAX_PAGE_SIZE))
    entries = filtered_entries(filters).values(
        *LIST_FIELDS, preview=Substr("response_text", 1, PREVIEW_CHARS * 2)
    )
    newest_first = after is None
    if connections[entries.db].vendor == "postgresql" and not _one_index_serves(filters):
        rows = windowed_page(
            entries,
            start=before or after,
            newest_first=newest_first,
            need=limit + 1,
            alias=entries.db,
        )
    elif after is not None:
        entries = entries.filter(GreaterThan(key(), value(after)))
        rows = list(entries.order_by("created_at", "id")[: limit + 1])
    else:
        if before is not None:
            entries = entries.filter(LessThan(key(), value(before)))
        rows = list(entries.order_by("-created_at", "-id")[: limit + 1])
    more = len(rows) > limit
    rows = rows[:limit]
    if not newest_first:
        rows.reverse()
    for row in rows:
        row["preview"] = one_line(row["preview"] or "", PREVIEW_CHARS)
    first = _cursor(rows[0]) if rows else None
    last = _cursor(rows[-1]) if rows else None
    if newest_first:
        return EntryPage(rows, older=last if more else None, newer=first if before else None)
    return EntryPage(rows, older=last, newer=first if more else None)


# Filters each served, with the list's order, by an index (column, created_at).
_INDEXED = ("user_id", "model", "endpoint", "feature", "client")


def _one_index_serves(filters: EntryFilters) -> bool:
    """Whether one index yields the page's rows in order (else: journal.windows).

    True for no filter, or one indexed equality, with or without dates.  A user name is
    not indexed, nor the ranges behind a status class or "cancelled".
    """
    indexed = [name for name in _INDEXED if getattr(filters, name) not in (None, "")]
    exact_status = filters.status.isdigit()
    if exact_status:
        indexed.append("status")
    unindexed = filters.q or filters.user or (filters.status and not exact_status)
    return not unindexed and len(indexed) <= 1


def _cursor(row: Mapping[str, Any]) -> str:
    return Cursor(row["created_at"], row["id"]).encode()


def one_line(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


@dataclass(frozen=True)
class Total:
    count: int
    approximate: bool


def estimated_total() -> Total:
    """How many rows the journal holds, without counting millions of them.

    PostgreSQL keeps an estimate, refreshed by (auto)vacuum and analyze; a small or
    never-analysed table is counted, which is cheap below EXACT_COUNT_UP_TO rows.
    """
    alias = journal_database()
    connection = connections[alias]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)",
                [Entry._meta.db_table],
            )
            found = cursor.fetchone()
        if found and found[0] > EXACT_COUNT_UP_TO:
            return Total(int(found[0]), approximate=True)
    counted = Entry.objects.all()[: EXACT_COUNT_UP_TO + 1].count()
    return Total(counted, approximate=counted > EXACT_COUNT_UP_TO)


# -- one request, the export ---------------------------------------------------------------


@dataclass(frozen=True)
class EntryDetail:
    entry: Entry
    events: list[Event]
    # The entry's token and API user as they are now; None when there was none or it
    # has been deleted since (the entry keeps the ids: the page says which).
    token: ApiToken | None = None
    api_user: ApiUser | None = None


def entry_detail(request_id: str) -> EntryDetail | None:
    """The entry of Kodify's id; else the latest whose client sent that id (what the
    client, and the server log, know it by)."""
    entry = Entry.objects.filter(request_id=request_id).first()
    if entry is None:
        entry = (
            Entry.objects.filter(client_request_id=request_id)
            .order_by("-created_at", "-id")
            .first()
        )
    if entry is None:
        return None
    events: list[Event] = []
    if entry.response_id:
        events = list(
            Event.objects.filter(response_id=entry.response_id).order_by("created_at", "id")[
                :MAX_DETAIL_EVENTS
            ]
        )
    token, api_user = _owner(entry)
    return EntryDetail(entry, events, token, api_user)


def _owner(entry: Entry) -> tuple[ApiToken | None, ApiUser | None]:
    """The entry's token with its user in one query; the user alone only when the entry
    has no token or the token is gone.  They live in the main database, which may not
    be the journal's: no join with the entry, ids only."""
    token = None
    if entry.token_id is not None:
        token = ApiToken.objects.select_related("user").filter(pk=entry.token_id).first()
    if token is not None and token.user_id == entry.user_id:
        return token, token.user
    api_user = None
    if entry.user_id is not None:
        api_user = ApiUser.objects.filter(pk=entry.user_id).first()
    return token, api_user


def export_rows(filters: EntryFilters) -> Iterator[tuple[Any, ...]]:
    """Every matching row, newest first, EXPORT_FIELDS in order.

    ``iterator()`` reads through a server-side cursor on PostgreSQL: memory stays flat
    whatever the export's size.
    """
    return (
        filtered_entries(filters)
        .order_by("-created_at", "-id")
        .values_list(*EXPORT_FIELDS)
        .iterator(chunk_size=EXPORT_CHUNK_SIZE)
    )


# -- the dropdowns ---------------------------------------------------------------------


def filter_choices() -> dict[str, list[str]]:
    """The values seen in the model, endpoint and client columns, cached for a minute."""
    alias = journal_database()
    key = f"journal:choices:{connections[alias].settings_dict['NAME']}"
    found = cache.get(key) if CHOICES_CACHE_SECONDS else None
    if found is None:
        found = {column: _distinct(alias, column) for column in CHOICE_COLUMNS}
        if CHOICES_CACHE_SECONDS:
            cache.set(key, found, CHOICES_CACHE_SECONDS)
    return found


def _distinct(alias: str, column: str) -> list[str]:
    """A loose index scan: one index probe per distinct value, not a pass over the table.

    Neither PostgreSQL nor SQLite skips through an index for ``SELECT DISTINCT`` by
    itself; the recursive query asks for "the next value after this one" instead.
    """
    if column not in CHOICE_COLUMNS:  # the name goes into the SQL
        raise ValueError(column)
    connection = connections[alias]
    table = connection.ops.quote_name(Entry._meta.db_table)
    name = connection.ops.quote_name(column)
    sql = (
        f"WITH RECURSIVE seen(value) AS ("  # noqa: S608 - names checked and quoted
        f" SELECT MIN({name}) FROM {table} WHERE {name} > ''"
        f" UNION ALL"
        f" SELECT (SELECT MIN({name}) FROM {table} WHERE {name} > seen.value)"
        f" FROM seen WHERE seen.value IS NOT NULL"
        f") SELECT value FROM seen WHERE value IS NOT NULL LIMIT %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [MAX_CHOICES])
        return [row[0] for row in cursor.fetchall()]
