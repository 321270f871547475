"""``manage.py kodify_journal_fill``: realistic journal rows, many and fast, for benchmarks.

The console must stay quick over months of traffic; measuring that needs a journal of
that size.  The rows are made by :mod:`journal.fill` and written by
:mod:`journal.fill_store` (COPY in chunks on PostgreSQL).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connections

from journal.fill import Filler
from journal.fill_store import fill_orm, fill_postgresql
from journal.rollups import rebuild
from journal.router import journal_database

CHUNK_ROWS = 50_000


class Command(BaseCommand):
    help = "Fill the journal with realistic rows for benchmarks (COPY on PostgreSQL)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--rows", type=int, default=1000, help="Journal rows to add.")
        parser.add_argument("--days", type=int, default=90, help="Days the rows spread over.")
        parser.add_argument("--users", type=int, default=200, help="Distinct users.")
        parser.add_argument("--seed", type=int, default=1, help="Random seed.")
        parser.add_argument(
            "--chunk", type=int, default=CHUNK_ROWS, help="Rows per COPY (or bulk insert)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        rows, days, users = options["rows"], options["days"], options["users"]
        if rows < 0 or days < 1 or users < 1 or options["chunk"] < 1:
            raise CommandError("--rows must be >= 0, --days, --users and --chunk >= 1.")
        alias = journal_database()
        filler = Filler(rows=rows, days=days, users=users, seed=options["seed"])
        started = time.perf_counter()
        connection = connections[alias]
        if connection.vendor == "postgresql":
            events = fill_postgresql(alias, filler, options["chunk"], self._progress(started))
        else:
            events = fill_orm(alias, filler, options["chunk"], self._progress(started))
        seconds = time.perf_counter() - started
        self.stdout.write(
            f"Added {rows:,} journal rows and {events:,} events to '{alias}' in {seconds:.1f} s "
            f"({rows / max(seconds, 1e-9):,.0f} rows/s)."
        )
        # The rows went in around the journal's stores, which count as they write.
        started = time.perf_counter()
        rebuild(alias)
        self.stdout.write(
            f"Counted the dashboards' rollups in {time.perf_counter() - started:.1f} s."
        )

    def _progress(self, started: float) -> Callable[[int, int, str], None]:
        def report(done: int, total: int, note: str = "") -> None:
            rate = done / max(time.perf_counter() - started, 1e-9)
            self.stdout.write(f"  {done:,} / {total:,} rows ({rate:,.0f} rows/s){note}")
            self.stdout.flush()

        return report
