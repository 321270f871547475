"""The journal counted as it is written: hourly and daily rollups for the dashboards.

A dashboard over 90 days of a busy installation would otherwise read millions of wide
rows (prompts and answers inline).  Instead every store of journal rows and events also
adds them to :class:`~journal.models.HourlyRollup` and ``DailyRollup`` (counts and sums
per hour and per day, one dimension at a time) and ``HourlyTiming`` and ``DailyTiming``
(histograms of TTFT and latency), in the same transaction: a batch is counted exactly
when it is stored, a replayed batch's rows already stored are not counted twice, and a
worker killed mid-batch leaves neither half.

Counts are added with ``INSERT … ON CONFLICT … DO UPDATE SET n = n + excluded.n``, which
PostgreSQL and SQLite both speak; writers in several processes meet on the same rows, so
each writes its keys in one sorted order (no deadlock between two batches).

Percentiles come from the histograms: buckets an eighth of an octave wide (a ratio of
2^(1/8) ≈ 1.09), so a percentile is within about 4.5 % of the exact one.

Completions are counted once per kind (shown, accepted, dismissed) through
:class:`~journal.models.CompletionFate`; see there for the model and language that the
journal row brings later.

:func:`rebuild` recounts everything from the rows, for journals written before the
rollups existed and for rows written around the stores (``kodify_journal_fill``).
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from django.db import connections, transaction
from django.db.models import Count, Q, Sum
from django.db.models.functions import Floor, Greatest, Ln, TruncHour

from journal.models import (
    ROLLUPS,
    TIMINGS,
    CompletionFate,
    Entry,
    Event,
    EventKind,
    Granularity,
)

# Dimension → the journal column it breaks requests down by.
ENTRY_DIMENSIONS = {
    "user": "username",
    "model": "model",
    "language": "language",
    "client": "client_name",
    "feature": "feature",
    "status": "status",
    "token": "token_id",  # the console's overview counts the tokens in use
}
ALL = "all"
COUNTERS = (
    "requests",
    "errors",
    "cancelled",
    "prompt_tokens",
    "completion_tokens",
    "ttft_count",
    "ttft_sum",
    "latency_sum",
    "shown",
    "accepted",
    "dismissed",
)
_INDEX = {name: index for index, name in enumerate(COUNTERS)}
FATE_COUNTER = {
    EventKind.VIEW.value: "shown",
    EventKind.SELECT.value: "accepted",
    EventKind.DISMISS.value: "dismissed",
}
# A request for a model nobody serves is answered 404: its name stays out of the model
# dimension (it still counts in the others), or every typo would be listed as a model.
UNKNOWN_MODEL_STATUS = 404
ERROR_STATUS = 400

BUCKETS_PER_OCTAVE = 8
MAX_BUCKET = BUCKETS_PER_OCTAVE * 24  # 2^24 ms: over four hours
TIMED_DIMENSIONS = (ALL, "model")

Key = tuple[str, dt.datetime, str, str]  # granularity, period start, dimension, value
REBUILD_BATCH = 10_000
TimingKey = tuple[str, dt.datetime, str, str, str, int]  # … metric, bucket


# floor(ln(ms) · 8 / ln 2) = floor(8 · log2(ms)), written with the natural logarithm in
# both Python and SQL so that the two agree to the last bit (PostgreSQL's two-argument
# LOG is numeric: a hundred times slower over millions of rows).
BUCKET_SCALE = BUCKETS_PER_OCTAVE / math.log(2)


def bucket(milliseconds: float) -> int:
    """The histogram bucket of a duration: floor(8 · log2(ms)), 1 ms and faster in 0."""
    if milliseconds <= 1:
        return 0
    return min(MAX_BUCKET, math.floor(math.log(milliseconds) * BUCKET_SCALE))


def bucket_bounds(index: int) -> tuple[float, float]:
    """The durations (ms) bucket ``index`` holds, as [low, high)."""
    low = 0.0 if index == 0 else 2 ** (index / BUCKETS_PER_OCTAVE)
    return low, 2 ** ((index + 1) / BUCKETS_PER_OCTAVE)


def histogram_percentile(counts: Mapping[int, int], fraction: float) -> float | None:
    """The percentile of a histogram, interpolated between ranks as PostgreSQL's
    percentile_cont does; each rank stands at its place within its bucket."""
    ordered = sorted((index, count) for index, count in counts.items() if count > 0)
    total = sum(count for _, count in ordered)
    if not total:
        return None
    position = fraction * (total - 1)
    low_rank, high_rank = math.floor(position), math.ceil(position)
    low = _rank_value(ordered, low_rank)
    high = _rank_value(ordered, high_rank)
    return low + (high - low) * (position - low_rank)


def _rank_value(ordered: Sequence[tuple[int, int]], rank: int) -> float:
    """The duration of the ``rank``-th shortest request (0-based), spread evenly (on a log
    scale) over its bucket with the others there."""
    seen = 0
    for index, count in ordered:
        if rank < seen + count:
            low, high = bucket_bounds(index)
            if index == 0:
                return high
            return float(low * (high / low) ** ((rank - seen + 0.5) / count))
        seen += count
    return bucket_bounds(ordered[-1][0])[1]


def periods(at: dt.datetime) -> tuple[tuple[str, dt.datetime], tuple[str, dt.datetime]]:
    """The hour and the day (UTC) that a moment is counted in."""
    return _periods_of(_hour(at))


_ENTRY_DIMENSION_NAMES = tuple(ENTRY_DIMENSIONS)  # in the order Tally.entries keys rows


def _hour(at: dt.datetime) -> dt.datetime:
    return at.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)


def _periods_of(hour: dt.datetime) -> tuple[tuple[str, dt.datetime], tuple[str, dt.datetime]]:
    return (Granularity.HOUR.value, hour), (Granularity.DAY.value, hour.replace(hour=0))


# -- counting ----------------------------------------------------------------------------


class Tally:
    """Counts for some rows and fates, in memory, until :meth:`add_to` writes them."""

    def __init__(self) -> None:
        self.counts: dict[Key, list[float]] = {}
        self.timings: dict[TimingKey, int] = defaultdict(int)

    def __bool__(self) -> bool:
        return bool(self.counts or self.timings)

    def _add(self, key: Key, index: int, amount: float) -> None:
        found = self.counts.get(key)
        if found is None:
            found = self.counts[key] = [0] * len(COUNTERS)
        found[index] += amount

    def entries(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Journal rows, as the stores hold them (column name → value).

        Rows that agree on the hour and every dimension are summed first, then spread
        over the dimensions and periods: a batch is mostly a few users' completions.
        """
        groups: dict[tuple[Any, ...], list[float]] = {}
        timed: dict[tuple[dt.datetime, str | None, str, int], int] = defaultdict(int)
        for row in rows:
            status = int(row.get("status") or 0)
            ttft, latency = row.get("ttft_ms"), row.get("latency_ms")
            hour = _hour(row["created_at"])
            key = (
                hour,
                str(row.get("username") or ""),
                None if status == UNKNOWN_MODEL_STATUS else str(row.get("model") or ""),
                str(row.get("language") or ""),
                str(row.get("client_name") or ""),
                str(row.get("feature") or ""),
                str(status),
                str(row.get("token_id") or ""),
            )
            found = groups.get(key)
            if found is None:
                found = groups[key] = [0] * 8
            found[0] += 1
            found[1] += status >= ERROR_STATUS
            found[2] += bool(row.get("cancelled"))
            found[3] += int(row.get("prompt_tokens") or 0)
            found[4] += int(row.get("completion_tokens") or 0)
            if ttft is not None:
                found[5] += 1
                found[6] += float(ttft)
                timed[(hour, key[2], "ttft", bucket(ttft))] += 1
            if latency is not None:
                found[7] += float(latency)
                timed[(hour, key[2], "latency", bucket(latency))] += 1
        for (hour, *values), vector in groups.items():
            pairs = [(ALL, ""), *zip(_ENTRY_DIMENSION_NAMES, values, strict=True)]
            for granularity, start in _periods_of(hour):
                for dimension, value in pairs:
                    if value is None:  # the model of a request answered 404
                        continue
                    key4 = (granularity, start, dimension, value)
                    counts = self.counts.get(key4)
                    if counts is None:
                        counts = self.counts[key4] = [0] * len(COUNTERS)
                    for index, amount in enumerate(vector):
                        counts[index] += amount
        for (hour, model, metric, index), count in timed.items():
            for granularity, start in _periods_of(hour):
                self.timings[(granularity, start, ALL, "", metric, index)] += count
                if model is not None:
                    self.timings[(granularity, start, "model", model, metric, index)] += count

    def fate(self, at: dt.datetime, kind: str, values: Iterable[tuple[str, str]]) -> None:
        """A completion's first event of ``kind``, in each (dimension, value) given."""
        index = _INDEX[FATE_COUNTER[kind]]
        for granularity, start in periods(at):
            for dimension, value in values:
                self._add((granularity, start, dimension, value), index, 1)

    def create_in(self, alias: str) -> None:
        """Write the counts into empty rollups (a rebuild): plain multi-row inserts, in
        key order, so that each dimension's periods lie together."""

        def in_order(key: tuple[Any, ...]) -> tuple[Any, ...]:
            return (key[2], key[1], *key[3:])

        for granularity, model in ROLLUPS.items():
            rows: list[Any] = [
                model(
                    period_start=start,
                    dimension=dimension,
                    value=value,
                    **dict(zip(COUNTERS, numbers, strict=True)),
                )
                for (kind, start, dimension, value), numbers in sorted(
                    self.counts.items(), key=lambda item: in_order(item[0])
                )
                if kind == granularity
            ]
            model.objects.using(alias).bulk_create(rows, batch_size=REBUILD_BATCH)
        for granularity, timing in TIMINGS.items():
            histograms: list[Any] = [
                timing(
                    period_start=start,
                    dimension=dimension,
                    value=value,
                    metric=metric,
                    bucket=index,
                    count=count,
                )
                for (kind, start, dimension, value, metric, index), count in sorted(
                    self.timings.items(), key=lambda item: in_order(item[0])
                )
                if kind == granularity
            ]
            timing.objects.using(alias).bulk_create(histograms, batch_size=REBUILD_BATCH)

    def add_to(self, alias: str) -> None:
        """Add the counts to the rollups (inside the caller's transaction)."""
        connection = connections[alias]
        adapt = connection.ops.adapt_datetimefield_value
        qn = connection.ops.quote_name
        with connection.cursor() as cursor:
            for granularity, model in ROLLUPS.items():
                rows = [
                    (adapt(start), dimension, value, *numbers)
                    for (kind, start, dimension, value), numbers in sorted(self.counts.items())
                    if kind == granularity
                ]
                if rows:
                    cursor.executemany(_upsert_sql(qn, model._meta.db_table, _KEY, COUNTERS), rows)
            for granularity, timing in TIMINGS.items():
                timing_rows = [
                    (adapt(start), dimension, value, metric, index, count)
                    for (kind, start, dimension, value, metric, index), count in sorted(
                        self.timings.items()
                    )
                    if kind == granularity
                ]
                if timing_rows:
                    sql = _upsert_sql(qn, timing._meta.db_table, _TIMING_KEY, ("count",))
                    cursor.executemany(sql, timing_rows)


_KEY = ("period_start", "dimension", "value")
_TIMING_KEY = (*_KEY, "metric", "bucket")


def _upsert_sql(qn: Any, table: str, key: Sequence[str], counters: Sequence[str]) -> str:
    """INSERT one row of counts, or add them to the row with the same key."""
    name = qn(table)
    columns = [*key, *counters]
    increments = ", ".join(f"{qn(c)} = {name}.{qn(c)} + excluded.{qn(c)}" for c in counters)
    return (
        f"INSERT INTO {name} ({', '.join(qn(c) for c in columns)})"  # noqa: S608
        f" VALUES ({', '.join(['%s'] * len(columns))})"
        f" ON CONFLICT ({', '.join(qn(c) for c in key)}) DO UPDATE SET {increments}"
    )


# -- what the stores call, inside their transaction ---------------------------------------


def count_entries(alias: str, rows: Sequence[Mapping[str, Any]]) -> None:
    """Journal rows just stored: count them, and the completions' fates that waited for
    their row to know its model (or language)."""
    if not rows:
        return
    tally = Tally()
    tally.entries(rows)
    by_response = {row["response_id"]: row for row in rows if row.get("response_id")}
    if by_response:
        _count_waiting_fates(alias, by_response, tally)
    tally.add_to(alias)


def _count_waiting_fates(
    alias: str, by_response: Mapping[str, Mapping[str, Any]], tally: Tally
) -> None:
    waiting = list(
        CompletionFate.objects.using(alias)
        .filter(response_id__in=list(by_response))
        .filter(Q(model_counted=False) | Q(language_counted=False))
        .order_by("id")
        .select_for_update()
    )
    for fate in waiting:
        row = by_response[fate.response_id]
        values = []
        if not fate.model_counted and int(row.get("status") or 0) != UNKNOWN_MODEL_STATUS:
            values.append(("model", str(row.get("model") or "")))
        if not fate.language_counted:
            values.append(("language", str(row.get("language") or "")))
        tally.fate(fate.created_at, fate.kind, values)
    if waiting:
        CompletionFate.objects.using(alias).filter(id__in=[f.id for f in waiting]).update(
            model_counted=True, language_counted=True
        )


def count_events(alias: str, rows: Sequence[Mapping[str, Any]]) -> None:
    """Tabby events just stored: a completion's first event of each kind is counted."""
    firsts: dict[tuple[str, str], Mapping[str, Any]] = {}
    for row in rows:
        kind, response_id = row.get("kind"), row.get("response_id") or ""
        if kind not in FATE_COUNTER or not response_id:
            continue
        key = (response_id, str(kind))
        if key not in firsts or row["created_at"] < firsts[key]["created_at"]:
            firsts[key] = row
    if not firsts:
        return
    objects = CompletionFate.objects.using(alias)
    known = set(
        objects.filter(response_id__in={rid for rid, _ in firsts}).values_list(
            "response_id", "kind"
        )
    )
    fresh = {key: row for key, row in firsts.items() if key not in known}
    if not fresh:
        return
    answered = {
        response_id: (model, language, status)
        for response_id, model, language, status in Entry.objects.using(alias)
        .filter(response_id__in={rid for rid, _ in fresh})
        .values_list("response_id", "model", "language", "status")
    }
    tally = Tally()
    fates = [
        _fate(
            tally,
            response_id=response_id,
            kind=kind,
            at=row["created_at"],
            user=str(row.get("username") or ""),
            client=str(row.get("client_name") or ""),
            language=str(row.get("language") or ""),
            answer=answered.get(response_id),
        )
        for (response_id, kind), row in sorted(fresh.items())
    ]
    objects.bulk_create(fates)
    tally.add_to(alias)


def _fate(
    tally: Tally,
    *,
    response_id: str,
    kind: str,
    at: dt.datetime,
    user: str,
    client: str,
    language: str,
    answer: tuple[str, str, int] | None,
) -> CompletionFate:
    """A completion's first event of ``kind``, counted in ``tally``: by user and editor
    at once, by model and language when its journal row (``answer``: model, language,
    status) is stored already; the fate says what waits for the row."""
    values = [(ALL, ""), ("user", user), ("client", client)]
    if answer is not None:
        model, answer_language, status = answer
        if status != UNKNOWN_MODEL_STATUS:
            values.append(("model", model or ""))
        language = language or answer_language or ""
    if language or answer is not None:
        values.append(("language", language))
    tally.fate(at, kind, values)
    return CompletionFate(
        response_id=response_id,
        kind=kind,
        created_at=at,
        language=language,
        model_counted=answer is not None,
        language_counted=bool(language) or answer is not None,
    )


# -- recounting ---------------------------------------------------------------------------


def rebuild(alias: str) -> None:
    """Count the whole journal again, from its rows and events.

    Grouped by the database (one pass per dimension, by the hour), so that even tens of
    millions of rows are recounted in minutes, not read into this process.
    """
    with transaction.atomic(using=alias):
        for model in (*ROLLUPS.values(), *TIMINGS.values(), CompletionFate):
            model.objects.using(alias).all().delete()
        tally = Tally()
        entries = Entry.objects.using(alias).annotate(hour=TruncHour("created_at", tzinfo=dt.UTC))
        _recount_entries(entries, tally)
        _recount_timings(entries, tally)
        _recount_fates(alias, tally)
        tally.create_in(alias)
    connection = connections[alias]
    if connection.vendor == "postgresql":
        # Fresh statistics: planned on an empty table's, the dashboards' sums sort what
        # they would hash (several times slower).
        with connection.cursor() as cursor:
            for model in (*ROLLUPS.values(), *TIMINGS.values(), CompletionFate):
                cursor.execute(f"ANALYZE {connection.ops.quote_name(model._meta.db_table)}")


def _recount_entries(entries: Any, tally: Tally) -> None:
    sums = {
        "requests": Count("id"),
        "errors": Count("id", filter=Q(status__gte=ERROR_STATUS)),
        "cancelled": Count("id", filter=Q(cancelled=True)),
        "prompt_tokens": Sum("prompt_tokens"),
        "completion_tokens": Sum("completion_tokens"),
        "ttft_count": Count("ttft_ms"),
        "ttft_sum": Sum("ttft_ms"),
        "latency_sum": Sum("latency_ms"),
    }
    groups: list[tuple[str, str | None]] = [(ALL, None), *ENTRY_DIMENSIONS.items()]
    for dimension, column in groups:
        found = entries
        if dimension == "model":
            found = found.exclude(status=UNKNOWN_MODEL_STATUS)
        names = ["hour"] if column is None else ["hour", column]
        for group in found.values(*names).annotate(**sums).order_by():
            value = "" if column is None else str(group[column] or "")
            for granularity, start in periods(group["hour"]):
                key = (granularity, start, dimension, value)
                for name in sums:
                    tally._add(key, _INDEX[name], group[name] or 0)


def _recount_timings(entries: Any, tally: Tally) -> None:
    for metric, column in (("ttft", "ttft_ms"), ("latency", "latency_ms")):
        # The same buckets as bucket(), 1 ms and faster in 0.
        index = Floor(Ln(Greatest(column, 1.0)) * BUCKET_SCALE)
        timed = entries.filter(**{f"{column}__isnull": False}).annotate(index=index)
        for dimension, names in ((ALL, ["hour", "index"]), ("model", ["hour", "model", "index"])):
            found = timed.exclude(status=UNKNOWN_MODEL_STATUS) if dimension == "model" else timed
            for group in found.values(*names).annotate(n=Count("id")).order_by():
                value = str(group.get("model") or "") if dimension == "model" else ""
                position = min(MAX_BUCKET, max(0, int(group["index"])))
                for granularity, start in periods(group["hour"]):
                    tally.timings[(granularity, start, dimension, value, metric, position)] += (
                        group["n"]
                    )


def _recount_fates(alias: str, tally: Tally) -> None:
    """One fate per completion and kind: its first event, with its row's model and
    language where the row is there.

    Raw SQL: one join of the grouped events to their rows (the ORM would correlate a
    subquery per column and completion), times as epoch seconds (a driver's datetime
    per row costs more than the rest of it), read in chunks from a server-side cursor.
    """
    connection = connections[alias]
    qn = connection.ops.quote_name
    at = qn("created_at")
    if connection.vendor == "postgresql":
        first = f"EXTRACT(EPOCH FROM MIN({at}))"
    else:
        first = f"(julianday(MIN({at})) - 2440587.5) * 86400.0"
    rid = qn("response_id")
    sql = (
        f"SELECT f.rid, f.kind, f.first, f.username, f.client_name, f.language,"  # noqa: S608
        f" e.{qn('model')}, e.{qn('language')}, e.{qn('status')}"
        f" FROM (SELECT {rid} AS rid, {qn('kind')} AS kind, {first} AS first,"
        f" MAX({qn('username')}) AS username, MAX({qn('client_name')}) AS client_name,"
        f" MAX({qn('language')}) AS language"
        f" FROM {qn(Event._meta.db_table)}"
        f" WHERE {qn('kind')} IN (%s, %s, %s) AND {rid} <> ''"
        f" GROUP BY {rid}, {qn('kind')}) f"
        f" LEFT JOIN {qn(Entry._meta.db_table)} e ON e.{rid} = f.rid"
        " ORDER BY f.rid, f.kind"
    )
    objects = CompletionFate.objects.using(alias)
    batch: list[CompletionFate] = []
    previous: tuple[str, str] | None = None
    with connection.chunked_cursor() as cursor:
        cursor.execute(sql, list(FATE_COUNTER))
        while rows := cursor.fetchmany(REBUILD_BATCH):
            for (
                response_id,
                kind,
                seconds,
                user,
                client,
                language,
                model,
                row_language,
                status,
            ) in rows:
                if (response_id, kind) == previous:  # two rows share a response id
                    continue
                previous = (response_id, kind)
                batch.append(
                    _fate(
                        tally,
                        response_id=response_id,
                        kind=kind,
                        at=dt.datetime.fromtimestamp(float(seconds), dt.UTC),
                        user=user or "",
                        client=client or "",
                        language=language or "",
                        answer=None if status is None else (model, row_language, status),
                    )
                )
            objects.bulk_create(batch)
            batch = []
