"""The dashboards' numbers, for the last N days or the hours of one day (UTC).

Read from the rollups (``journal/rollups.py``): counts per day (or hour) and dimension,
kept up to date as the journal is written, and histograms of TTFT and latency.  A period
of a year is a few tens of thousands of rollup rows whatever the journal's size, so a
page answers in milliseconds on a journal of tens of millions of rows; the numbers are
still cached for a minute (CACHE_SECONDS), as the page is looked at far more often than
a minute changes them.

Completions *shown*, *accepted* and *dismissed* come from Tabby's events (``view``,
``select``, ``dismiss``), counted as completions, not events: a completion counts once
per kind, in the period of its first event of that kind, however many events said so
(``select_kind=line`` accepts line by line).  Events carry their own editor and user;
their model, and their language when the event has none (Tabby's events do not say),
come from the journal row with the same ``response_id``.

Percentiles come from the histograms, within about 5 % of the exact ones.  Requests
answered 404 (a model nobody serves, mostly) count everywhere but in the models list.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.core.cache import cache
from django.db import connections
from django.db.models import CharField, Count, Sum
from django.db.models.functions import Cast

from journal.models import ROLLUPS, TIMINGS, Granularity
from journal.rollups import ALL, COUNTERS, histogram_percentile
from journal.router import journal_database

DEFAULT_DAYS = 14
MAX_DAYS = 366
CACHE_SECONDS = 60
TOP = 10  # rows per breakdown
NONE_LABEL = "(none)"
# Bumped when Dashboard changes shape: a cached one of the previous shape is not read.
CACHE_VERSION = 3

# Completions (shown, accepted, dismissed).
Fates = tuple[int, int, int]
NO_FATES: Fates = (0, 0, 0)


def acceptance_rate(shown: int, accepted: int) -> float | None:
    return accepted / shown if shown else None


@dataclass(frozen=True)
class Day:
    """One column of the charts: a day, or an hour of the one-day view (``hour`` set)."""

    day: dt.date
    requests: int = 0
    users: int = 0
    shown: int = 0
    accepted: int = 0
    dismissed: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    ttft_p50: float | None = None
    ttft_p95: float | None = None
    latency_p50: float | None = None
    latency_p95: float | None = None
    hour: int | None = None

    @property
    def rate(self) -> float | None:
        return acceptance_rate(self.shown, self.accepted)

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def start(self) -> dt.datetime:
        return _day_start(self.day) + dt.timedelta(hours=self.hour or 0)

    @property
    def label(self) -> str:
        return f"{self.hour:02d}:00" if self.hour is not None else f"{self.day:%m-%d}"


@dataclass(frozen=True)
class Share:
    """One model, language, editor or user: its requests and its completions' fate."""

    name: str
    requests: int = 0
    shown: int = 0
    accepted: int = 0
    dismissed: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    # The journal column and value that list this share's requests ("" for none).
    column: str = ""
    value: str = ""

    @property
    def rate(self) -> float | None:
        return acceptance_rate(self.shown, self.accepted)

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


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
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    hourly: bool = False  # per_day holds the hours of ``until``
    # The TOP names by requests (each with its completions' fate)…
    by_model: list[Share] = field(default_factory=list)
    by_language: list[Share] = field(default_factory=list)
    by_client: list[Share] = field(default_factory=list)
    by_user: list[Share] = field(default_factory=list)
    by_feature: list[Share] = field(default_factory=list)
    by_status: list[Share] = field(default_factory=list)
    timing_by_model: list[Timing] = field(default_factory=list)
    # …and by completions shown, for the acceptance section.
    acceptance_by_language: list[Share] = field(default_factory=list)
    acceptance_by_user: list[Share] = field(default_factory=list)

    @property
    def rate(self) -> float | None:
        return acceptance_rate(self.shown, self.accepted)

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def dashboard(
    days: int = DEFAULT_DAYS, *, today: dt.date | None = None, hourly: bool = False
) -> Dashboard:
    """The last ``days`` days up to ``today``; with ``hourly``, the hours of ``today``."""
    days = 1 if hourly else max(1, min(days, MAX_DAYS))
    today = today or dt.datetime.now(dt.UTC).date()
    alias = journal_database()
    name = connections[alias].settings_dict["NAME"]
    key = f"journal:dashboard:v{CACHE_VERSION}:{name}:{today}:{days}:{int(hourly)}"
    found = cache.get(key) if CACHE_SECONDS else None
    if found is None:
        found = _compute(days, today, alias, hourly=hourly)
        if CACHE_SECONDS:
            cache.set(key, found, CACHE_SECONDS)
    return found


def _day_start(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC)


# Rollup dimension → (journal column, the Dashboard list it feeds).
BREAKDOWNS = {
    "model": ("model", "by_model"),
    "language": ("language", "by_language"),
    "client": ("client_name", "by_client"),
    "user": ("username", "by_user"),
    "feature": ("feature", "by_feature"),
    "status": ("status", "by_status"),
}
_REQUESTS, _ERRORS = COUNTERS.index("requests"), COUNTERS.index("errors")
_PROMPT, _COMPLETION = COUNTERS.index("prompt_tokens"), COUNTERS.index("completion_tokens")
_SHOWN = COUNTERS.index("shown")


def _compute(days: int, today: dt.date, alias: str, *, hourly: bool) -> Dashboard:
    since = today - dt.timedelta(days=days - 1)
    start, end = _day_start(since), _day_start(today + dt.timedelta(days=1))
    granularity = Granularity.HOUR if hourly else Granularity.DAY
    rollups = (
        ROLLUPS[granularity]
        .objects.using(alias)
        .filter(period_start__gte=start, period_start__lt=end)
    )
    # Summed by the database: a year of rollups is tens of thousands of rows, a few
    # hundred once summed.  Periods come back as text, parsed once each (a driver's
    # time zone aware datetime costs more than the rest of a row).
    per_period = {
        _moment(at): numbers
        for at, *numbers in rollups.filter(dimension=ALL)
        .annotate(at=Cast("period_start", CharField()))
        .values_list("at", *COUNTERS)
    }
    users_per_period = {
        _moment(at): users
        for at, users in rollups.filter(dimension="user", requests__gt=0)
        .exclude(value="")
        .annotate(at=Cast("period_start", CharField()))
        .values("at")
        .annotate(users=Count("id"))
        .values_list("at", "users")
        .order_by()
    }
    # The breakdowns of a day by the hour are the day's: read from its one daily row
    # per name rather than summed from twenty-four hourly ones.
    whole = (
        ROLLUPS[Granularity.DAY].objects.using(alias).filter(period_start=start)
        if hourly
        else rollups
    )
    totals: dict[str, dict[str, list[float]]] = defaultdict(dict)
    for dimension, value, *numbers in (
        whole.exclude(dimension=ALL)
        .values("dimension", "value")
        .annotate(**{f"sum_{name}": Sum(name) for name in COUNTERS})
        .values_list("dimension", "value", *(f"sum_{name}" for name in COUNTERS))
        .order_by()
    ):
        totals[dimension][value] = numbers
    overall = [sum(column) for column in zip(*per_period.values(), strict=True)] or [0] * len(
        COUNTERS
    )
    timings = _timings(alias, granularity, start, end, whole_day=hourly)
    if hourly:
        starts = [start + dt.timedelta(hours=hour) for hour in range(24)]
    else:
        starts = [start + dt.timedelta(days=offset) for offset in range(days)]
    columns = [
        _column(
            at,
            per_period.get(at),
            users_per_period.get(at, 0),
            timings.per_period.get(at),
            hourly,
        )
        for at in starts
    ]
    shares = {dimension: _shares(dimension, totals[dimension]) for dimension in BREAKDOWNS}
    shown, accepted, dismissed = (int(n) for n in overall[_SHOWN : _SHOWN + 3])
    model_requests = {share.value: share.requests for share in shares["model"]}
    return Dashboard(
        days=days,
        since=since,
        until=today,
        per_day=columns,
        requests=int(overall[_REQUESTS]),
        users=sum(1 for value, numbers in totals["user"].items() if value and numbers[_REQUESTS]),
        shown=shown,
        accepted=accepted,
        dismissed=dismissed,
        errors=int(overall[_ERRORS]),
        prompt_tokens=int(overall[_PROMPT]),
        completion_tokens=int(overall[_COMPLETION]),
        hourly=hourly,
        timing=_timing("all", int(overall[_REQUESTS]), timings.overall),
        timing_by_model=[
            _timing(name or NONE_LABEL, requests, timings.by_model.get(name, {}))
            for name, requests in sorted(
                model_requests.items(), key=lambda item: (-item[1], item[0])
            )[:TOP]
        ],
        **{attribute: _top(shares[dimension]) for dimension, (_, attribute) in BREAKDOWNS.items()},
        acceptance_by_language=_most_shown(shares["language"]),
        acceptance_by_user=_most_shown(shares["user"]),
    )


@functools.lru_cache(maxsize=4096)
def _moment(text: str) -> dt.datetime:
    """A period's start as the database wrote it as text (PostgreSQL adds "+00")."""
    parsed = dt.datetime.fromisoformat(text.replace(" ", "T"))
    return parsed.replace(tzinfo=dt.UTC) if parsed.tzinfo is None else parsed.astimezone(dt.UTC)


def _column(
    at: dt.datetime,
    numbers: list[float] | None,
    users: int,
    histograms: dict[str, dict[int, int]] | None,
    hourly: bool,
) -> Day:
    numbers = numbers or [0] * len(COUNTERS)
    histograms = histograms or {}
    ttft, latency = histograms.get("ttft", {}), histograms.get("latency", {})
    return Day(
        day=at.date(),
        requests=int(numbers[_REQUESTS]),
        users=users,
        shown=int(numbers[_SHOWN]),
        accepted=int(numbers[_SHOWN + 1]),
        dismissed=int(numbers[_SHOWN + 2]),
        errors=int(numbers[_ERRORS]),
        prompt_tokens=int(numbers[_PROMPT]),
        completion_tokens=int(numbers[_COMPLETION]),
        ttft_p50=histogram_percentile(ttft, 0.5),
        ttft_p95=histogram_percentile(ttft, 0.95),
        latency_p50=histogram_percentile(latency, 0.5),
        latency_p95=histogram_percentile(latency, 0.95),
        hour=at.hour if hourly else None,
    )


def _shares(dimension: str, totals: dict[str, list[float]]) -> list[Share]:
    column = BREAKDOWNS[dimension][0]
    return [
        Share(
            name=value or NONE_LABEL,
            requests=int(numbers[_REQUESTS]),
            shown=int(numbers[_SHOWN]),
            accepted=int(numbers[_SHOWN + 1]),
            dismissed=int(numbers[_SHOWN + 2]),
            errors=int(numbers[_ERRORS]),
            prompt_tokens=int(numbers[_PROMPT]),
            completion_tokens=int(numbers[_COMPLETION]),
            column=column,
            value=value,
        )
        for value, numbers in totals.items()
    ]


def _top(shares: Iterable[Share]) -> list[Share]:
    """The TOP names by requests; a name with completions but no request (its rows not
    stored yet) is left out."""
    ranked = sorted(
        (share for share in shares if share.requests),
        key=lambda share: (-share.requests, share.value),
    )
    return ranked[:TOP]


def _most_shown(shares: Iterable[Share]) -> list[Share]:
    """The TOP names by completions shown, each with its requests."""
    ranked = sorted(
        (share for share in shares if share.shown or share.accepted or share.dismissed),
        key=lambda share: (-share.shown, -share.accepted, share.value),
    )
    return ranked[:TOP]


# -- percentiles ---------------------------------------------------------------------------


@dataclass
class _Histograms:
    overall: dict[str, dict[int, int]] = field(default_factory=lambda: defaultdict(dict))
    by_model: dict[str, dict[str, dict[int, int]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(dict))
    )
    per_period: dict[dt.datetime, dict[str, dict[int, int]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(dict))
    )


def _timings(
    alias: str, granularity: str, start: dt.datetime, end: dt.datetime, *, whole_day: bool
) -> _Histograms:
    """The period's histograms overall and per model (``whole_day``: the day's, from its
    daily rows), and per column overall."""
    found = _Histograms()
    rows = (
        TIMINGS[granularity]
        .objects.using(alias)
        .filter(period_start__gte=start, period_start__lt=end)
    )
    whole = (
        TIMINGS[Granularity.DAY].objects.using(alias).filter(period_start=start)
        if whole_day
        else rows
    )
    for dimension, value, metric, index, count in (
        whole.values("dimension", "value", "metric", "bucket")
        .annotate(n=Sum("count"))
        .values_list("dimension", "value", "metric", "bucket", "n")
        .order_by()
    ):
        if dimension == ALL:
            found.overall[metric][index] = count
        else:
            found.by_model[value][metric][index] = count
    for at, metric, index, count in (
        rows.filter(dimension=ALL)
        .annotate(at=Cast("period_start", CharField()))
        .values_list("at", "metric", "bucket", "count")
    ):
        found.per_period[_moment(at)][metric][index] = count
    return found


def _timing(name: str, requests: int, histograms: dict[str, dict[int, int]]) -> Timing:
    ttft, latency = histograms.get("ttft", {}), histograms.get("latency", {})
    return Timing(
        name=name,
        requests=requests,
        ttft_p50=histogram_percentile(ttft, 0.5),
        ttft_p95=histogram_percentile(ttft, 0.95),
        latency_p50=histogram_percentile(latency, 0.5),
        latency_p95=histogram_percentile(latency, 0.95),
    )
