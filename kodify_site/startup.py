"""What each server process does before it serves (called from asgi.py)."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
from django.conf import settings
from django.core import checks
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connections

logger = logging.getLogger("kodify.startup")


def prepare_server() -> None:
    """Check, migrate, wait; safe to call from inside a running event loop.

    uvicorn's workers (``--workers N``) import the application inside their event loop,
    where Django refuses database calls; the work then runs in a thread while the worker,
    which serves nothing yet, waits for it.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        _prepare()
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="kodify-startup") as pool:
        pool.submit(_prepare).result()


def _prepare() -> None:
    exit_on_bad_settings()
    if settings.RUN_MIGRATIONS or not schema_present("default"):
        call_command("kodify_migrate", database="default")
    if "journal" in connections:
        prepare_journal_database()
    from accounts.checks import users_table_missing  # the project may know its apps

    problem = users_table_missing()
    if problem:
        print(f"Kodify cannot start: {problem} (kodify.E022)", file=sys.stderr)
        raise SystemExit(1)
    import_config_upstreams()
    # Requests open their own connections (CONN_MAX_AGE 0); without this, the one opened
    # here would stay open, idle, for the life of every worker.
    connections.close_all()
    if settings.WAIT_VLLM:
        wait_for_first_upstream()


def import_config_upstreams() -> None:
    """config.yml's upstreams into the database, where the console shows and edits them.

    A failure does not stop the start: the gateway serves with what the database has.
    """
    try:
        from gateway import services  # the project may know its apps
        from gateway.config_file import gateway_config

        services.import_config_upstreams(config=gateway_config())
    except Exception as exc:
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        logger.warning(
            "config.yml's upstreams could not be imported into the database (%s); serving "
            "with the upstreams the database has",
            first_line,
        )


def exit_on_bad_settings() -> None:
    """Run the system checks; print each error on one line and stop when there is one."""
    messages = checks.run_checks()
    for message in messages:
        if not message.is_serious():
            logger.warning("%s (%s)", message.msg, message.id)
    errors = [message for message in messages if message.is_serious()]
    if errors:
        for message in errors:
            print(f"Kodify cannot start: {message.msg} ({message.id})", file=sys.stderr)
        raise SystemExit(1)


def schema_present(alias: str) -> bool:
    try:
        with connections[alias].cursor() as cursor:
            tables = connections[alias].introspection.table_names(cursor)
    except DatabaseError:
        return False
    return "django_migrations" in tables


def prepare_journal_database() -> None:
    """Create and migrate the journal's own database (LOGS_DB_*) when it needs it.

    One that cannot be reached does not hold up the start: the journal keeps its records
    in the spool, and its writer creates the tables when the database appears.
    """
    if not settings.RUN_MIGRATIONS and schema_present("journal"):
        return
    try:
        call_command("kodify_migrate", database="journal")
    except (CommandError, DatabaseError) as exc:
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        logger.warning(
            "the journal database is not ready (%s); serving anyway, the journal keeps "
            "its records in the spool until it is",
            first_line,
        )


def wait_for_first_upstream() -> bool:
    """WAIT_VLLM: try the first upstream's /health until it answers; serve anyway after."""
    from gateway.upstreams import get_table  # the project may know its apps

    table = get_table()
    if not table.upstreams:
        logger.error("WAIT_VLLM is on but no upstream is configured.")
        return False
    upstream = table.upstreams[0]
    attempts = settings.WAIT_VLLM_ATTEMPTS
    for attempt in range(1, attempts + 1):
        logger.info(
            "waiting for upstream %s (attempt %d of %d)", upstream.display_url, attempt, attempts
        )
        try:
            response = httpx.get(
                upstream.endpoint("/health"),
                headers=upstream.auth_headers,
                timeout=settings.KODIFY_UPSTREAM_CONNECT_TIMEOUT,
            )
            if response.status_code in (200, 404):
                logger.info("upstream %s is up", upstream.display_url)
                return True
            reason = f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            reason = type(exc).__name__
        logger.info("upstream %s is not ready yet (%s)", upstream.display_url, reason)
        if attempt < attempts:
            time.sleep(settings.WAIT_VLLM_TIMEOUT)
    logger.error(
        "upstream %s did not answer after %d attempts; serving anyway: /health shows it "
        "down and its requests get 503 until it appears",
        upstream.display_url,
        attempts,
    )
    return False
