"""``manage.py kodify_wait``: wait until the databases and Redis answer, or give up.

A container that starts with its database (compose starts them together, a database
server restarts) would otherwise fail its first migration and be restarted in a loop
with a stack trace each time; this waits with one line every few seconds instead, and
gives up with one sentence that names what did not answer.

A server that answers "database does not exist" is up: ``kodify_migrate`` creates the
database (or a set-up job is about to).
"""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connections

# Seconds between tries, and between the lines that say the wait goes on.
RETRY_SECONDS = 1.0
REPORT_SECONDS = 10.0


class Command(BaseCommand):
    help = "Wait until every configured database and Redis accept connections."

    # The server that starts next checks the settings itself: no warning twice.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--timeout",
            type=float,
            default=300.0,
            help="Seconds to wait in all before giving up (default: 300).",
        )

    def handle(self, *args: Any, timeout: float, **options: Any) -> None:
        deadline = time.monotonic() + timeout
        for alias in connections:
            connection = connections[alias]
            if connection.vendor != "postgresql":
                continue  # a file (SQLite): nothing to wait for
            address = f"{connection.settings_dict.get('HOST') or 'localhost'}:" + str(
                connection.settings_dict.get("PORT") or 5432
            )
            self._wait(
                f'database "{alias}" at {address}',
                lambda connection=connection: _postgresql_problem(connection),
                deadline,
            )
        if settings.REDIS_URL:
            self._wait("Redis", _redis_problem, deadline)

    def _wait(self, where: str, problem_of: Any, deadline: float) -> None:
        reported = time.monotonic()
        while True:
            problem = problem_of()
            if problem is None:
                return
            now = time.monotonic()
            if now >= deadline:
                raise CommandError(
                    f"{where} did not answer in time: {problem}. Check that it runs and "
                    "that the settings name it (DB_URL, LOGS_DB_*, REDIS_URL)."
                )
            if now - reported >= REPORT_SECONDS:
                self.stderr.write(f"waiting for {where}: {problem}")
                reported = now
            time.sleep(min(RETRY_SECONDS, max(0.0, deadline - now)))


def _postgresql_problem(connection: Any) -> str | None:
    # A connection of its own, with the parameters Django would use (as kodify_migrate
    # does): Django's pool would turn every refusal into "couldn't get a connection",
    # hiding both the reason and a database that only needs creating.
    import psycopg

    params = connection.get_connection_params()
    params.setdefault("connect_timeout", 3)
    try:
        psycopg.connect(**params).close()
    except psycopg.Error as error:
        message = _first_line(error)
        # 3D000 invalid_catalog_name; libpq may not report it at connect time, hence the text.
        missing = "does not exist" in message and "database" in message
        if getattr(error, "sqlstate", None) == "3D000" or missing:
            return None
        return message
    return None


def _redis_problem() -> str | None:
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=3, socket_timeout=3)
    try:
        client.ping()
    except redis.RedisError as error:
        return _first_line(error)
    finally:
        client.close()
    return None


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]
