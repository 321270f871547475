"""Database settings built from URLs (``DB_URL``) with dj-database-url."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import dj_database_url

# The guide's deployments wrote SQLAlchemy-style URLs (postgresql+psycopg2://…);
# the driver part means nothing to Django, so it is dropped.
_DRIVER_SEPARATOR = "+"


def normalise_url(url: str) -> str:
    parts = urlsplit(url)
    scheme = parts.scheme.split(_DRIVER_SEPARATOR, 1)[0].lower()
    if scheme == "postgres":
        scheme = "postgresql"
    return urlunsplit((scheme, parts.netloc, parts.path, parts.query, parts.fragment))


def database_from_url(url: str, *, pool_size: int = 0) -> dict[str, Any]:
    """``pool_size``: PostgreSQL connections each process keeps open (psycopg's pool);
    0 opens one per use, as Django does by default."""
    config: dict[str, Any] = dict(
        dj_database_url.parse(normalise_url(url), conn_max_age=0, conn_health_checks=True)
    )
    if config["ENGINE"] == "django.db.backends.postgresql":
        config.setdefault("OPTIONS", {})
        config["OPTIONS"].setdefault("connect_timeout", 10)
        config["OPTIONS"].setdefault("application_name", "kodify")
        if pool_size:
            # Opening a connection costs PostgreSQL a process and the caller milliseconds;
            # a pool keeps a few per process (Django's own psycopg pool support).
            # With a pool, CONN_HEALTH_CHECKS makes the pool check each connection it
            # hands out, so one that PostgreSQL dropped is replaced, not failed on.
            config["OPTIONS"]["pool"] = {
                "min_size": 1,
                "max_size": pool_size,
                "timeout": 10,  # waiting for a free connection
                "max_idle": 300,
            }
    return config


def journal_database(
    *, host: str, port: int, name: str, user: str, password: str
) -> dict[str, Any]:
    """The journal's own PostgreSQL database, from the guide's LOGS_DB_* variables."""
    return {
        "ENGINE": "django.db.backends.postgresql",
        "HOST": host,
        "PORT": port,
        "NAME": name,
        "USER": user,
        "PASSWORD": password,
        "CONN_MAX_AGE": 0,
        "CONN_HEALTH_CHECKS": True,
        # A journal database that went away must fail fast: records wait in the spool.
        "OPTIONS": {"connect_timeout": 5, "application_name": "kodify-journal"},
    }


def sqlite_database(path: Path) -> dict[str, Any]:
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": path,
        # Several workers share one file: wait for a lock instead of failing at once.
        "OPTIONS": {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        },
    }
