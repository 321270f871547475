"""The dashboards' numbers, for the last N days (UTC).

Every query is bounded by ``created_at``, so it reads the period through the time indexes
(``journal_time``, ``journal_event_time``, ``journal_answer_time``), never the rest of the
journal.  Reading a period's rows is the cost (the rows are wide, prompts and answers
inline), so PostgreSQL reads the requests twice, not once per number: every count in one
pass (GROUPING SETS), the percentiles in another; the completions' fates take a third
pass, over the events and an index.  That is still about 0.8 s for 14 days of a
million-row journal (155,000 rows, 140,000 events; 2 cores), so a period's numbers are
computed at most once a minute (CACHE_SECONDS); the page is looked at far more often
than a minute changes them.

Completions *shown*, *accepted* and *dismissed* come from Tabby's events (``view``,
``select``, ``dismiss``), counted as completions, not events: distinct ``response_id``s
with at least one such event in the period.  A completion shown twice, or accepted line
by line (``select_kind=line``), counts once, so the acceptance rate (accepted / shown)
stays a share of completions.  Events carry their own editor and user; their model, and
their language when the event has none (Tabby's events do not say), come from the
journal row with the same ``response_id`` (``_fates``).
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from itertools import chain
from typing import Any

from django.core.cache import cache
from django.db import connections, transaction
from django.db.models import Count, Q, QuerySet
from django.db.models.functions import TruncDate

from journal.models import Entry, Event, EventKind
from journal.router import journal_database

DEFAULT_DAYS = 14
MAX_DAYS = 366
CACHE_SECONDS = 60
TOP = 10  # rows per breakdown
# SQLite has no percentile function: its percentiles are those of the newest rows.
SQLITE_TIMING_SAMPLE = 50_000
# Events follow their completion within seconds; this bounds the rows the join reads.
EVENT_LAG = dt.timedelta(days=1)
NONE_LABEL = "(none)"
# Bumped when Dashboard changes shape: a cached one of the previous shape is not read.
CACHE_VERSION = 2

# Completions (shown, accepted, dismissed).
Fates = tuple[int, int, int]
NO_FATES: Fates = (0, 0, 0)


def acceptance_rate(shown: int, accepted: int) -> float | None:
    return accepted / shown if shown else None


@dataclass(frozen=True)
class Day:
    day: dt.date
    requests: int = 0
    users: int = 0
    shown: int = 0
    accepted: int = 0
    dismissed: int = 0

    @property
    def rate(self) -> float | None:
        return acceptance_rate(self.shown, self.accepted)


@dataclass(frozen=True)
class Share:
    """One model, language, editor or user: its requests and its completions' fate."""

    name: str
    requests: int = 0
    shown: int = 0
    accepted: int = 0
    dismissed: int = 0

    @property
    def rate(self) -> float | None:
        return acceptance_rate(self.shown, self.accepted)


@dataclass(frozen=True)
class Timing:
    name: str
    requests: int
    ttft_p50: float | None
    ttft_p95: float | None
    latency_p50: float | None
    latency_p95: float | None


@dataclass(frozen=True)
class Dashboard:
    days: int
    since: dt.date
    until: dt.date
    per_day: list[Day]
    requests: int
    users: int
    shown: int
    accepted: int
    timing: Timing
    dismissed: int = 0
    # The TOP names by requests (each with its completions' fate)…
    by_model: list[Share] = field(default_factory=list)
    by_language: list[Share] = field(default_factory=list)
    by_client: list[Share] = field(default_factory=list)
    by_user: list[Share] = field(default_factory=list)
    timing_by_model: list[Timing] = field(default_factory=list)
    # …and by completions shown, for the acceptance section.
    acceptance_by_language: list[Share] = field(default_factory=list)
    acceptance_by_user: list[Share] = field(default_factory=list)

    @property
    def rate(self) -> float | None:
        return acceptance_rate(self.shown, self.accepted)


def dashboard(days: int = DEFAULT_DAYS, *, today: dt.date | None = None) -> Dashboard:
    days = max(1, min(days, MAX_DAYS))
    today = today or dt.datetime.now(dt.UTC).date()
    alias = journal_database()
    name = connections[alias].settings_dict["NAME"]
    key = f"journal:dashboard:v{CACHE_VERSION}:{name}:{today}:{days}"
    found = cache.get(key) if CACHE_SECONDS else None
    if found is None:
        with _settled(alias):
            found = _compute(days, today, alias)
        if CACHE_SECONDS:
            cache.set(key, found, CACHE_SECONDS)
    return found


@contextmanager
def _settled(alias: str) -> Iterator[None]:
    """On PostgreSQL, planner settings for a few large aggregates, for them only.

    JIT compilation costs these queries more than it saves, and the default work_mem
    makes their sorts spill to disk.
    """
    connection = connections[alias]
    if connection.vendor != "postgresql":
        yield
        return
    with transaction.atomic(using=alias):
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL jit = off")
            cursor.execute("SET LOCAL work_mem = '64MB'")
        yield


def _compute(days: int, today: dt.date, alias: str) -> Dashboard:
    since = today - dt.timedelta(days=days - 1)
    start, end = _day_start(since), _day_start(today + dt.timedelta(days=1))
    entries = Entry.objects.filter(created_at__gte=start, created_at__lt=end)
    if connections[alias].vendor == "postgresql":
        counts = _entry_counts_postgresql(alias, start, end)
        timing, timing_by_model = _timings_postgresql(alias, start, end)
    else:
        counts = _entry_counts(entries)
        timing, timing_by_model = _timings_sampled(entries)
    fates = _fates(alias, start, end)
    dates = [since + dt.timedelta(days=offset) for offset in range(days)]
    shown, accepted, dismissed = fates.total
    return Dashboard(
        days=days,
        since=since,
        until=today,
        per_day=[
            Day(
                date,
                counts.requests_per_day.get(date, 0),
                counts.users_per_day.get(date, 0),
                *fates.per_day.get(date, NO_FATES),
            )
            for date in dates
        ],
        requests=counts.requests,
        users=counts.users,
        shown=shown,
        accepted=accepted,
        dismissed=dismissed,
        timing=timing,
        by_model=_shares(counts.top("model"), fates.by["model"]),
        by_language=_shares(counts.top("language"), fates.by["language"]),
        by_client=_shares(counts.top("client_name"), fates.by["client_name"]),
        by_user=_shares(counts.top("username"), fates.by["username"]),
        timing_by_model=timing_by_model,
        acceptance_by_language=_most_shown(fates.by["language"], counts.by["language"]),
        acceptance_by_user=_most_shown(fates.by["username"], counts.by["username"]),
    )


def _day_start(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC)


# -- the period's requests -------------------------------------------------------------

BREAKDOWNS = ("model", "language", "client_name", "username")


@dataclass
class EntryCounts:
    requests_per_day: dict[dt.date, int] = field(default_factory=dict)
    users_per_day: dict[dt.date, int] = field(default_factory=dict)
    users: int = 0
    by: dict[str, dict[str, int]] = field(default_factory=lambda: defaultdict(dict))

    @property
    def requests(self) -> int:
        return sum(self.requests_per_day.values())

    def top(self, column: str) -> list[tuple[str, int]]:
        counted = self.by[column].items()
        return sorted(counted, key=lambda item: (-item[1], item[0]))[:TOP]


def _entry_counts(entries: QuerySet[Entry]) -> EntryCounts:
    """One query per number: fine for the databases that are not PostgreSQL."""
    named = ~Q(username="")
    counts = EntryCounts(
        users=entries.aggregate(users=Count("username", distinct=True, filter=named))["users"]
    )
    for row in (
        entries.annotate(day=TruncDate("created_at", tzinfo=dt.UTC))
        .values("day")
        .annotate(requests=Count("id"), users=Count("username", distinct=True, filter=named))
        .order_by()
    ):
        counts.requests_per_day[row["day"]] = row["requests"]
        counts.users_per_day[row["day"]] = row["users"]
    for column in BREAKDOWNS:
        rows = entries.values(column).annotate(requests=Count("id")).order_by()
        counts.by[column] = {row[column]: row["requests"] for row in rows}
    return counts


# GROUPING(day, model, language, client_name, username): a bit set for each column the
# row is *not* grouped by, the first column being the highest bit.
_GROUPED_BY = {
    0b01111: "day",
    0b10111: "model",
    0b11011: "language",
    0b11101: "client_name",
    0b11110: "username",
    0b01110: "day_user",
}


def _entry_counts_postgresql(alias: str, start: dt.datetime, end: dt.datetime) -> EntryCounts:
    """Every count of the period in one pass over it (GROUPING SETS, hashed).

    A dashboard's period can be a large part of the journal: reading it once rather than
    six times is most of the page's time.  Active users per day are counted from the
    (day, user) groups, which keeps every set hashable (no COUNT(DISTINCT)).
    """
    connection = connections[alias]
    qn = connection.ops.quote_name
    sql = (
        "SELECT GROUPING(day, model, language, client_name, username),"  # noqa: S608
        " day, model, language, client_name, username, COUNT(*)"
        f" FROM (SELECT ({qn('created_at')} AT TIME ZONE 'UTC')::date AS day,"
        f" {qn('model')} AS model, {qn('language')} AS language,"
        f" {qn('client_name')} AS client_name, {qn('username')} AS username"
        f" FROM {qn(Entry._meta.db_table)}"
        f" WHERE {qn('created_at')} >= %s AND {qn('created_at')} < %s) AS period"
        " GROUP BY GROUPING SETS ((day), (model), (language), (client_name), (username),"
        " (day, username))"
    )
    counts = EntryCounts()
    with connection.cursor() as cursor:
        cursor.execute(sql, [start, end])
        for grouping, day, model, language, client, username, requests in cursor:
            match _GROUPED_BY[grouping]:
                case "day":
                    counts.requests_per_day[day] = requests
                case "day_user" if username:
                    counts.users_per_day[day] = counts.users_per_day.get(day, 0) + 1
                case "username":
                    counts.by["username"][username] = requests
                    counts.users += bool(username)
                case "model":
                    counts.by["model"][model] = requests
                case "language":
                    counts.by["language"][language] = requests
                case "client_name":
                    counts.by["client_name"][client] = requests
    return counts


def _shares(requests: Iterable[tuple[str, int]], fates: dict[str, Fates]) -> list[Share]:
    """The TOP names by requests, each with its completions' fate."""
    return [
        Share(name or NONE_LABEL, count, *fates.get(name, NO_FATES)) for name, count in requests
    ]


def _most_shown(fates: dict[str, Fates], requests: dict[str, int]) -> list[Share]:
    """The TOP names by completions shown, each with its requests."""
    ranked = sorted(fates.items(), key=lambda item: (-item[1][0], -item[1][1], item[0]))[:TOP]
    return [Share(name or NONE_LABEL, requests.get(name, 0), *found) for name, found in ranked]


# -- the period's completions: Tabby's events ------------------------------------------

FATE_BREAKDOWNS = ("language", "client_name", "username", "model")
FATE_KINDS = (EventKind.VIEW.value, EventKind.SELECT.value, EventKind.DISMISS.value)


@dataclass
class FateCounts:
    total: Fates = NO_FATES
    per_day: dict[dt.date, Fates] = field(default_factory=dict)
    by: dict[str, dict[str, Fates]] = field(default_factory=lambda: defaultdict(dict))


# GROUPING(day, language, client_name, username, model), as for _GROUPED_BY.
_FATES_GROUPED_BY = {
    0b11111: "total",
    0b01111: "day",
    0b10111: "language",
    0b11011: "client_name",
    0b11101: "username",
    0b11110: "model",
}


def _fates(alias: str, start: dt.datetime, end: dt.datetime) -> FateCounts:
    """Completions shown, accepted and dismissed in the period: in all, per day and per
    language, editor, user and model.

    One pass on PostgreSQL (GROUPING SETS); elsewhere one query per breakdown.
    """
    connection = connections[alias]
    fates_sql, params = _fates_sql(alias, start, end)
    sums = "SUM(shown), SUM(accepted), SUM(dismissed)"
    counts = FateCounts()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"{fates_sql} SELECT GROUPING(day, language, client_name, username, model),"  # noqa: S608
                f" day, language, client_name, username, model, {sums} FROM fates"
                " GROUP BY GROUPING SETS ((), (day), (language), (client_name), (username),"
                " (model))",
                params,
            )
            for grouping, day, language, client, username, model, *found in cursor:
                keys = {"language": language, "client_name": client}
                keys.update(username=username, model=model)
                _count(counts, _FATES_GROUPED_BY[grouping], day, keys, found)
            return counts
        for column in ("total", "day", *FATE_BREAKDOWNS):
            key = "NULL" if column == "total" else column  # names from the lists above
            group = "" if column == "total" else f" GROUP BY {column}"
            sql = f"{fates_sql} SELECT {key}, {sums} FROM fates{group}"  # noqa: S608
            cursor.execute(sql, params)
            for value, *found in cursor:
                _count(counts, column, value, {column: value}, found)
    return counts


def _count(
    counts: FateCounts, column: str, day: Any, keys: dict[str, Any], found: list[Any]
) -> None:
    fates: Fates = (int(found[0] or 0), int(found[1] or 0), int(found[2] or 0))
    if column == "total":
        counts.total = fates
    elif column == "day":
        # SQLite hands the date back as text.
        counts.per_day[day if isinstance(day, dt.date) else dt.date.fromisoformat(day)] = fates
    else:
        counts.by[column][keys[column] or ""] = fates


def _fates_sql(alias: str, start: dt.datetime, end: dt.datetime) -> tuple[str, list[Any]]:
    """``WITH fates AS (…)``: one row per completion with events in the period.

    Each row says whether the completion was shown, accepted, dismissed (0 or 1: counted
    once however many events of a kind it had), the day of its first event, its editor
    and user, and its language and model.  The events are grouped by ``response_id``
    after the join to the journal rows, so a response id that two rows share still
    counts once.  The journal side is bounded by time like the events (EVENT_LAG) and
    read from ``journal_answer_time`` alone: the rows themselves hold the prompts.
    Raw SQL: the two tables share no foreign key, and the ORM joins along relations only.
    """
    connection = connections[alias]
    qn = connection.ops.quote_name
    adapt = connection.ops.adapt_datetimefield_value
    at, kind, rid = qn("created_at"), qn("kind"), qn("response_id")
    language, model = qn("language"), qn("model")
    day, day_params = connection.ops.datetime_cast_date_sql(f"MIN(ev.{at})", (), "UTC")
    flag = f"MAX(CASE WHEN ev.{kind} = %s THEN 1 ELSE 0 END)"
    # Names from the models' metadata, quoted; every value is a parameter.
    sql = (
        f"WITH fates AS (SELECT {day} AS day,"  # noqa: S608
        f" COALESCE(NULLIF(MAX(ev.{language}), ''), MAX(en.{language}), '') AS language,"
        f" MAX(ev.{qn('client_name')}) AS client_name, MAX(ev.{qn('username')}) AS username,"
        f" COALESCE(MAX(en.{model}), '') AS model,"
        f" {flag} AS shown, {flag} AS accepted, {flag} AS dismissed"
        f" FROM {qn(Event._meta.db_table)} ev"
        f" LEFT JOIN {qn(Entry._meta.db_table)} en ON en.{rid} = ev.{rid}"
        f" AND en.{at} >= %s AND en.{at} < %s AND en.{rid} <> ''"
        f" WHERE ev.{at} >= %s AND ev.{at} < %s AND ev.{kind} IN (%s, %s, %s)"
        f" AND ev.{rid} <> ''"
        f" GROUP BY ev.{rid})"
    )
    params = [
        *day_params,
        *FATE_KINDS,
        adapt(start - EVENT_LAG),
        adapt(end),
        adapt(start),
        adapt(end),
        *FATE_KINDS,
    ]
    return sql, params


# -- percentiles ---------------------------------------------------------------------------


def percentile_cont(values: Sequence[float], fraction: float) -> float | None:
    """The same interpolation as PostgreSQL's percentile_cont, in Python."""
    if not values:
        return None
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _timings_sampled(entries: QuerySet[Entry]) -> tuple[Timing, list[Timing]]:
    """Percentiles computed here, of the newest SQLITE_TIMING_SAMPLE rows."""
    sample = entries.order_by("-created_at", "-id").values_list("model", "ttft_ms", "latency_ms")
    ttft: dict[str, list[float]] = defaultdict(list)
    latency: dict[str, list[float]] = defaultdict(list)
    for model, first_token, last_byte in sample[:SQLITE_TIMING_SAMPLE]:
        latency[model].append(last_byte)
        if first_token is not None:
            ttft[model].append(first_token)
    models = sorted(latency, key=lambda name: (-len(latency[name]), name))[:TOP]
    overall = _timing(
        "all", [*chain.from_iterable(ttft.values())], [*chain.from_iterable(latency.values())]
    )
    return overall, [_timing(name, ttft[name], latency[name]) for name in models]


def _timings_postgresql(
    alias: str, start: dt.datetime, end: dt.datetime
) -> tuple[Timing, list[Timing]]:
    """Overall and per model in one pass (GROUPING SETS), both percentiles in one sort."""
    connection = connections[alias]
    qn = connection.ops.quote_name
    sql = (
        "SELECT GROUPING(model), model, COUNT(*),"  # noqa: S608
        " percentile_cont(ARRAY[0.5, 0.95]) WITHIN GROUP (ORDER BY ttft_ms),"
        " percentile_cont(ARRAY[0.5, 0.95]) WITHIN GROUP (ORDER BY latency_ms)"
        f" FROM (SELECT {qn('model')} AS model, {qn('ttft_ms')} AS ttft_ms,"
        f" {qn('latency_ms')} AS latency_ms FROM {qn(Entry._meta.db_table)}"
        f" WHERE {qn('created_at')} >= %s AND {qn('created_at')} < %s) AS period"
        " GROUP BY GROUPING SETS ((), (model))"
    )
    overall = Timing("all", 0, None, None, None, None)
    by_model = []
    with connection.cursor() as cursor:
        cursor.execute(sql, [start, end])
        for grouped_out, model, requests, ttft, latency in cursor:
            ttft, latency = ttft or (None, None), latency or (None, None)
            timing = Timing(model or NONE_LABEL, requests, *ttft, *latency)
            if grouped_out:
                overall = replace(timing, name="all")
            else:
                by_model.append(timing)
    by_model.sort(key=lambda timing: (-timing.requests, timing.name))
    return overall, by_model[:TOP]


def _timing(name: str, ttft: Sequence[float], latency: Sequence[float]) -> Timing:
    return Timing(
        name=name or NONE_LABEL,
        requests=len(latency),
        ttft_p50=percentile_cont(ttft, 0.5),
        ttft_p95=percentile_cont(ttft, 0.95),
        latency_p50=percentile_cont(latency, 0.5),
        latency_p95=percentile_cont(latency, 0.95),
    )
