"""How a worker keeps its upstream table in step with the database, off the hot path.

Every few seconds the worker reads two version stamps from the cache (Redis in
production): one moves when an administrator changes upstreams, models or settings in
the console, the other after every health check.  Only when one moved does the worker
load a :class:`~gateway.snapshot.GatewaySnapshot` (a few queries, in a thread) and
rebuild its table.  Requests never touch the database.

Health checks run where the deployment has them: the Celery beat task
``gateway.check_upstreams`` in production; this loop itself when Celery is eager (the
embedded defaults, no worker process).  If the stored checks go stale (no beat running)
the worker probes its upstreams itself rather than route on old news.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.cache import cache

from accounts.redis_outage import settings_redis_answered, settings_redis_failed
from gateway.snapshot import CONFIG_VERSION_KEY, HEALTH_VERSION_KEY, GatewaySnapshot

if TYPE_CHECKING:
    from gateway.upstreams import UpstreamTable

logger = logging.getLogger("kodify.upstreams")

# Stored checks older than this many check intervals are not trusted: nobody runs them.
STALE_INTERVALS = 2
_UNREAD = ("unread", "unread")


@dataclass(frozen=True)
class DatabaseAccess:
    """The follower's two ways into the database, both synchronous (run in a thread).

    Given by the gateway app once Django is ready (``GatewayConfig.ready``), so that the
    routing table, on the hot path, imports no ORM module.
    """

    load_snapshot: Callable[[], GatewaySnapshot | None]  # None: the database cannot answer
    check_and_store: Callable[[], bool]  # run the health checks; False: not stored


_database: DatabaseAccess | None = None


def use_database(access: DatabaseAccess) -> None:
    global _database
    _database = access


class DatabaseFollower:
    def __init__(self, table: UpstreamTable) -> None:
        self.table = table
        self.versions: tuple[Any, Any] = _UNREAD
        self.available = True  # False while the database cannot give a snapshot
        self._warned_stale = False

    async def follow(self) -> bool:
        """Reload the table when a version stamp moved; True when it reloaded."""
        database = _database
        if database is None:  # no database to follow (a table used on its own)
            return False
        versions = await sync_to_async(_read_versions, thread_sensitive=False)()
        if versions == self.versions:
            return False
        snapshot = await sync_to_async(database.load_snapshot, thread_sensitive=False)()
        if snapshot is None:
            self.available = False
            return False
        self.available = True
        self.versions = versions  # as read before loading: a later change is not missed
        self.table.apply_snapshot(snapshot)
        return True

    async def check(self, probe: Callable[[], Awaitable[None]]) -> None:
        """One round of health checks, by whoever should run them here."""
        eager = settings.CELERY_TASK_ALWAYS_EAGER
        database = _database
        if (
            self.available
            and eager
            and database is not None
            and await sync_to_async(database.check_and_store, thread_sensitive=False)()
        ):
            await self.follow()
        if self.available and not self._stored_checks_are_stale():
            self._warned_stale = False
            return
        if self.available and not eager and not self._warned_stale:
            logger.warning(
                "The stored upstream health checks are stale: is Celery beat running "
                "(celery -A kodify_site beat)? Each worker checks its upstreams itself "
                "meanwhile."
            )
            self._warned_stale = True
        await probe()

    def _stored_checks_are_stale(self) -> bool:
        limit = STALE_INTERVALS * self.table.refresh_interval
        now = time.time()
        checks = [u.last_check for u in self.table.upstreams if u.enabled]
        return not checks or any(
            check is None or now - check.timestamp() > limit for check in checks
        )


def _read_versions() -> tuple[Any, Any]:
    try:
        found = cache.get_many([CONFIG_VERSION_KEY, HEALTH_VERSION_KEY])
    except Exception as exc:  # a cache outage must not stop the loop; the table stays
        if not settings_redis_failed(exc, where="reading the upstream versions"):
            logger.warning("the cache cannot be read for the upstream versions", exc_info=True)
        return _UNREAD
    settings_redis_answered()
    return found.get(CONFIG_VERSION_KEY, ""), found.get(HEALTH_VERSION_KEY, "")
