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
            settings_dict = connections[alias].settings_dict
            where = f'database "{alias}" at {settings_dict.get("HOST") or "localhost"}:' + str(
                settings_dict.get("PORT") or 5432
            )
            self._wait(where, lambda alias=alias: _database_problem(alias), deadline)
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


def _database_problem(alias: str) -> str | None:
    settings_dict = connections[alias].settings_dict
    if "postgresql" not in settings_dict["ENGINE"]:
        return None  # a file (SQLite): nothing to wait for
    return _postgresql_problem(settings_dict)


def _postgresql_problem(settings_dict: dict[str, Any]) -> str | None:
    # A connection of its own: Django's pool would turn every refusal into "couldn't get
    # a connection", hiding both the reason and a database that only needs creating.
    import psycopg

    options = {
        key: value
        for key, value in (settings_dict.get("OPTIONS") or {}).items()
        if key in ("sslmode", "sslrootcert", "sslcert", "sslkey", "options")
    }
    try:
        psycopg.connect(
            host=settings_dict.get("HOST") or None,
            port=settings_dict.get("PORT") or None,
            user=settings_dict.get("USER") or None,
            password=settings_dict.get("PASSWORD") or None,
            dbname=settings_dict.get("NAME") or None,
            connect_timeout=3,
            **options,
        ).close()
    except psycopg.Error as error:
        message = _first_line(error)
        if "does not exist" in message and "database" in message:
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
