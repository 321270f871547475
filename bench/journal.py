"""``python -m bench.journal``: the journal console's pages over a journal of N rows.

Auditors browse months of traffic; every page must stay under 300 ms at that size.  The
bench makes a fresh PostgreSQL database (on ``--db-url``, else ``DB_URL``, else the local
server), migrates it, fills it with ``manage.py kodify_journal_fill``, logs in as an
auditor and times each page with Django's test client, in this process: the median of
``--repeat`` runs after one warm-up.  Measured: the list, each filter, full-text search
(a common and a rare word), the second page (the "older" link of the first), an entry,
the dashboard and a filtered CSV export (first byte and whole).  It prints a table
against the target and writes ``bench/results/journal-<UTC time>.json``.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from bench import report

RESULTS_DIR = Path(__file__).resolve().parent / "results"
TARGET_MS = 300.0
DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
BENCH_DATABASE = "kodify_journal_bench"
AUDITOR = "bench-auditor"
# The list's "older" link carries the keyset cursor of its last row.
_OLDER = re.compile(r"""href="[^"]*[?&](?:amp;)?before=([^"&]+)""")


@dataclass
class Timing:
    name: str
    path: str
    status: int
    median_ms: float
    runs_ms: list[float]
    first_byte_ms: float | None = None  # streamed answers (the CSV export)
    cold_ms: float | None = None  # the first request, before any warm-up

    @property
    def passed(self) -> bool:
        # A dashboard must answer in time on its first view too (nothing cached yet).
        cold = self.cold_ms or 0 if self.name.startswith("dashboard") else 0
        return self.status == 200 and max(self.median_ms, cold) <= TARGET_MS


def database_url(server: str, name: str) -> str:
    parts = urlsplit(server)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, ""))


def recreate_database(server: str, name: str, *, create: bool = True) -> None:
    import psycopg

    parts = urlsplit(server)
    admin = urlunsplit((parts.scheme.split("+")[0], parts.netloc, "/postgres", parts.query, ""))
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if create:
            connection.execute(f'CREATE DATABASE "{name}"')


def setup_django(url: str, data_dir: Path) -> None:
    """Django in this process, on the bench database, with the journal in it."""
    for key in list(os.environ):
        if key.startswith(("LOGS_DB_", "KODIFY_", "MTSAI_")) or key in ("REDIS_URL",):
            del os.environ[key]
    os.environ.update(
        DB_URL=url,
        KODIFY_DATA_DIR=str(data_dir),
        KODIFY_SECRET_KEY="bench-secret-key-" + "x" * 40,
        DJANGO_SETTINGS_MODULE="kodify_site.settings",
    )
    import django

    django.setup()
    from django.conf import settings

    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]


def fill(rows: int, days: int, users: int, *, search: bool = True) -> None:
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    if not search:
        drop_search_column()
    call_command("kodify_journal_fill", rows=rows, days=days, users=users)


def auditor_client() -> Any:
    from django.contrib.auth import get_user_model
    from django.test import Client

    user_model = get_user_model()
    user = user_model.objects.filter(username=AUDITOR).first()
    if user is None:
        user = user_model.objects.create_superuser(AUDITOR, "auditor@example.com", None)
    client = Client()
    client.force_login(user)
    return client


def cases(client: Any) -> list[tuple[str, str]]:
    """(name, path) of every page to time, with filter values that match rows."""
    from django.db.models import Count, Max, Min
    from django.urls import reverse

    from journal.fill import COMMON_WORD, MIDDLE_WORD, RARE_WORD
    from journal.models import Entry

    list_path = reverse("journal:list")
    span = Entry.objects.aggregate(first=Min("created_at"), last=Max("created_at"))
    middle = span["first"] + (span["last"] - span["first"]) / 2
    since, until = (middle - timedelta(days=3)).date(), (middle + timedelta(days=3)).date()
    top = Entry.objects.values("model").annotate(n=Count("id")).order_by("-n")
    model = top[0]["model"] if top else ""
    rare_model = top[len(top) - 1]["model"] if top else ""
    clients = Entry.objects.values("client_name").annotate(n=Count("id")).order_by("n")
    client_name = clients[0]["client_name"] if clients else ""
    entry = Entry.objects.filter(created_at__gte=middle).order_by("created_at").first()

    def listed(**query: str) -> str:
        return f"{list_path}?{urlencode(query)}"

    found = [
        ("list", list_path),
        ("user", listed(user="user007")),
        ("model", listed(model=model)),
        ("model (rarest)", listed(model=rare_model)),
        ("endpoint", listed(endpoint="/v1/chat/completions")),
        ("feature", listed(feature="chat")),
        ("status 500", listed(status="500")),
        ("status 4xx", listed(status="4xx")),
        ("client (rarest)", listed(client=client_name)),
        ("since/until (7 days)", listed(since=str(since), until=str(until))),
        (f"search '{COMMON_WORD}'", listed(q=COMMON_WORD)),
        (f"search '{MIDDLE_WORD}'", listed(q=MIDDLE_WORD)),
        (f"search '{RARE_WORD}'", listed(q=RARE_WORD)),
        ("search + user", listed(q=COMMON_WORD, user="user007")),
    ]
    first_page = client.get(list_path).content.decode()
    older = _OLDER.search(first_page)
    if older:
        found.append(("second page", listed(before=older.group(1).replace("&amp;", "&"))))
    if entry is not None:
        found.append(("entry", reverse("journal:detail", args=[entry.request_id])))
    found.extend(dashboard_cases())
    export = {"model": rare_model, "since": str(since), "until": str(until)}
    found.append(("CSV export (model, 7 days)", f"{reverse('journal:export')}?{urlencode(export)}"))
    return found


DASHBOARD_DAYS = (1, 7, 14, 30, 90, 366)


def dashboard_cases() -> list[tuple[str, str]]:
    """The dashboard over each period the page offers (and a year), and one day by the
    hour; computed afresh every time (the page's one-minute cache is off)."""
    from django.urls import reverse

    from journal import dashboards

    dashboards.CACHE_SECONDS = 0
    path = reverse("journal:dashboard")
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date()
    return [
        *((f"dashboard {days} days", f"{path}?days={days}") for days in DASHBOARD_DAYS),
        ("dashboard one day by hour", f"{path}?day={yesterday:%Y-%m-%d}"),
    ]


def drop_search_column() -> None:
    """For --dashboards: the full-text column costs most of a fill (about half a
    millisecond a row) and the dashboards never read it."""
    from django.db import connection

    from journal.search import drop_search_sql

    with connection.cursor() as cursor:
        for statement in drop_search_sql():
            cursor.execute(statement)


def time_page(client: Any, name: str, path: str, repeat: int) -> Timing:
    def once() -> tuple[int, float, float | None]:
        started = time.perf_counter()
        response = client.get(path)
        first: float | None = None
        if response.streaming:
            for chunk in response.streaming_content:
                if first is None and chunk:
                    first = (time.perf_counter() - started) * 1000
        else:
            response.content  # noqa: B018 - rendered already; read as a client would
        return response.status_code, (time.perf_counter() - started) * 1000, first

    _, cold, _ = once()  # warm-up: caches, query plans, the connection
    runs = [once() for _ in range(repeat)]
    totals = [total for _, total, _ in runs]
    firsts = [first for _, _, first in runs if first is not None]
    status = max(code for code, _, _ in runs)
    return Timing(
        name, path, status, statistics.median(totals), [round(t, 1) for t in totals],
        statistics.median(firsts) if firsts else None, round(cold, 1),
    )  # fmt: skip


def format_table(timings: Sequence[Timing], rows: int) -> str:
    lines = [
        f"== journal console over {rows:,} rows: median of the runs (target {TARGET_MS:.0f} ms)",
        f"{'page':<28} {'status':>6} {'cold':>10} {'median':>10} {'first byte':>11}  result",
    ]
    for t in timings:
        first = f"{t.first_byte_ms:8.1f} ms" if t.first_byte_ms is not None else ""
        cold = f"{t.cold_ms:7.1f} ms" if t.cold_ms is not None else ""
        verdict = "pass" if t.passed else ("FAIL" if t.status == 200 else f"HTTP {t.status}")
        lines.append(
            f"{t.name:<28} {t.status:>6} {cold:>10} {t.median_ms:7.1f} ms {first:>11}  {verdict}"
        )
    return "\n".join(lines)


@dataclass(frozen=True)
class Settings:
    rows: int
    days: int
    users: int
    repeat: int
    server: str
    database: str
    reuse: bool
    keep: bool
    results_dir: Path
    dashboards: bool = False


def run(settings: Settings, measure: Callable[[Any, list[tuple[str, str]]], list[Timing]]) -> int:
    started = datetime.now(UTC)
    url = database_url(settings.server, settings.database)
    if not settings.reuse:
        print(f"creating database {settings.database} on {urlsplit(settings.server).hostname}")
        recreate_database(settings.server, settings.database)
    with tempfile.TemporaryDirectory(prefix="kodify-journal-bench-") as data_dir:
        setup_django(url, Path(data_dir))
        fill_seconds = None
        if not settings.reuse:
            print(f"filling {settings.rows:,} rows over {settings.days} days", flush=True)
            begun = time.perf_counter()
            fill(settings.rows, settings.days, settings.users, search=not settings.dashboards)
            fill_seconds = time.perf_counter() - begun
        from django.db import connections

        from journal.models import Entry

        rows = Entry.objects.count()
        client = auditor_client()
        timings = measure(client, dashboard_cases() if settings.dashboards else cases(client))
        connections.close_all()
    print("\n" + format_table(timings, rows))
    if not settings.keep and not settings.reuse:
        recreate_database(settings.server, settings.database, create=False)
    record = {
        "started_at": started.isoformat(timespec="seconds"),
        "rows": rows,
        "fill_seconds": fill_seconds,
        "target_ms": TARGET_MS,
        "repeat": settings.repeat,
        "machine": {"cpus": os.cpu_count(), "load_average": os.getloadavg()},
        "pages": [{**asdict(t), "passed": t.passed} for t in timings],
        "passed": all(t.passed for t in timings),
    }
    path = settings.results_dir / f"journal-{started:%Y%m%d-%H%M%S}.json"
    report.write_json(path, record)
    print(f"\nresults: {path}")
    return 0 if all(t.status == 200 for t in timings) else 1


def parse_args(argv: Sequence[str] | None) -> Settings:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", "--journal-rows", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per page")
    parser.add_argument(
        "--db-url",
        default=os.environ.get("DB_URL") or DEFAULT_SERVER,
        help="the PostgreSQL server to make the bench database on (default: DB_URL, "
        "else the local server)",
    )
    parser.add_argument("--database", default=BENCH_DATABASE)
    parser.add_argument(
        "--reuse", action="store_true", help="time the pages of the database a --keep run left"
    )
    parser.add_argument("--keep", action="store_true", help="keep the filled database")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument(
        "--dashboards",
        action="store_true",
        help="time the dashboards only, on a journal filled without its full-text column "
        "(ten times faster to fill: for journals of tens of millions of rows)",
    )
    args = parser.parse_args(argv)
    return Settings(
        rows=args.rows, days=args.days, users=args.users, repeat=args.repeat,
        server=args.db_url, database=args.database, reuse=args.reuse, keep=args.keep,
        results_dir=args.results_dir, dashboards=args.dashboards,
    )  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    settings = parse_args(argv)

    def measure(client: Any, pages: list[tuple[str, str]]) -> list[Timing]:
        timings = []
        for name, path in pages:
            timing = time_page(client, name, path, settings.repeat)
            print(f"  {name:<28} {timing.median_ms:8.1f} ms  (HTTP {timing.status})", flush=True)
            timings.append(timing)
        return timings

    return run(settings, measure)


if __name__ == "__main__":
    sys.exit(main())
