"""The dashboards' numbers, for the last N days (UTC).

Every query is bounded by ``created_at``, so it reads the period through the time indexes
(``journal_time``, ``journal_event_time``), never the rest of the journal.  Reading a
period's rows is the cost (the rows are wide, prompts and answers inline), so PostgreSQL
reads the requests twice, not once per number: every count in one pass (GROUPING SETS),
the percentiles in another.  That is still about 1.5 s for 14 days of a million-row
journal (155,000 rows), so a period's numbers are computed at most once a minute
(CACHE_SECONDS); the page is looked at far more often than a minute changes them.

Completions *shown* and *accepted* are Tabby's events (``view`` and ``select``), counted
as events; the acceptance rate is accepted / shown.  Events carry their own language,
editor and user; their model comes from the journal row with the same ``response_id``.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from itertools import chain

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


def acceptance_rate(shown: int, accepted: int) -> float | None:
    return accepted / shown if shown else None


@dataclass(frozen=True)
class Day:
    day: dt.date
    requests: int = 0
    users: int = 0
    shown: int = 0
    accepted: int = 0

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
    by_model: list[Share] = field(default_factory=list)
    by_language: list[Share] = field(default_factory=list)
    by_client: list[Share] = field(default_factory=list)
    by_user: list[Share] = field(default_factory=list)
    timing_by_model: list[Timing] = field(default_factory=list)

    @property
    def rate(self) -> float | None:
        return acceptance_rate(self.shown, self.accepted)


def dashboard(days: int = DEFAULT_DAYS, *, today: dt.date | None = None) -> Dashboard:
    days = max(1, min(days, MAX_DAYS))
    today = today or dt.datetime.now(dt.UTC).date()
    alias = journal_database()
    key = f"journal:dashboard:{connections[alias].settings_dict['NAME']}:{today}:{days}"
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
    events = Event.objects.filter(
        created_at__gte=start, created_at__lt=end, kind__in=(EventKind.VIEW, EventKind.SELECT)
    )
    if connections[alias].vendor == "postgresql":
        counts = _entry_counts_postgresql(alias, start, end)
        timing, timing_by_model = _timings_postgresql(alias, start, end)
    else:
        counts = _entry_counts(entries)
        timing, timing_by_model = _timings_sampled(entries)
    fates = events.aggregate(shown=_shown(), accepted=_accepted())
    day = TruncDate("created_at", tzinfo=dt.UTC)
    fates_per_day: dict[dt.date, tuple[int, int]] = {
        row["day"]: (row["shown"], row["accepted"])
        for row in events.annotate(day=day)
        .values("day")
        .annotate(shown=_shown(), accepted=_accepted())
        .order_by()
    }
    dates = [since + dt.timedelta(days=offset) for offset in range(days)]
    return Dashboard(
        days=days,
        since=since,
        until=today,
        per_day=[
            Day(
                date,
                counts.requests_per_day.get(date, 0),
                counts.users_per_day.get(date, 0),
                *fates_per_day.get(date, (0, 0)),
            )
            for date in dates
        ],
        requests=counts.requests,
        users=counts.users,
        shown=fates["shown"],
        accepted=fates["accepted"],
        timing=timing,
        by_model=_shares(counts.top("model"), _acceptance_by_model(alias, start, end)),
        by_language=_shares(counts.top("language"), _acceptance_by(events, "language")),
        by_client=_shares(counts.top("client_name"), _acceptance_by(events, "client_name")),
        by_user=_shares(counts.top("username"), _acceptance_by(events, "username")),
        timing_by_model=timing_by_model,
    )


def _day_start(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC)


def _shown() -> Count:
    return Count("id", filter=Q(kind=EventKind.VIEW))


def _accepted() -> Count:
    return Count("id", filter=Q(kind=EventKind.SELECT))


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


def _acceptance_by(events: QuerySet[Event], column: str) -> dict[str, tuple[int, int]]:
    rows = events.values(column).annotate(shown=_shown(), accepted=_accepted()).order_by()
    return {row[column]: (row["shown"], row["accepted"]) for row in rows}


def _acceptance_by_model(
    alias: str, start: dt.datetime, end: dt.datetime
) -> dict[str, tuple[int, int]]:
    """Events joined to their journal rows by ``response_id``.

    Raw SQL because the two tables share no foreign key (events may arrive before or
    without their row), and the ORM only joins along relations; bounding both sides by
    time lets PostgreSQL hash-join two index ranges instead of probing once per event.
    """
    connection = connections[alias]
    qn = connection.ops.quote_name
    adapt = connection.ops.adapt_datetimefield_value
    # Names from the models' metadata, quoted; every value is a parameter.
    sql = (
        f"SELECT en.{qn('model')},"  # noqa: S608
        f" SUM(CASE WHEN ev.{qn('kind')} = %s THEN 1 ELSE 0 END),"
        f" SUM(CASE WHEN ev.{qn('kind')} = %s THEN 1 ELSE 0 END)"
        f" FROM {qn(Event._meta.db_table)} ev"
        f" JOIN {qn(Entry._meta.db_table)} en ON en.{qn('response_id')} = ev.{qn('response_id')}"
        f" WHERE ev.{qn('created_at')} >= %s AND ev.{qn('created_at')} < %s"
        f" AND ev.{qn('kind')} IN (%s, %s) AND ev.{qn('response_id')} <> ''"
        f" AND en.{qn('created_at')} >= %s AND en.{qn('created_at')} < %s"
        f" GROUP BY en.{qn('model')}"
    )
    params = [
        EventKind.VIEW.value,
        EventKind.SELECT.value,
        adapt(start),
        adapt(end),
        EventKind.VIEW.value,
        EventKind.SELECT.value,
        adapt(start - EVENT_LAG),
        adapt(end),
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {model: (int(shown), int(accepted)) for model, shown, accepted in cursor}


def _shares(requests: Iterable[tuple[str, int]], fates: dict[str, tuple[int, int]]) -> list[Share]:
    """The TOP names by requests, each with its completions shown and accepted."""
    return [Share(name or NONE_LABEL, count, *fates.get(name, (0, 0))) for name, count in requests]


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
