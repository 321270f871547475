"""One warning when Redis goes away and one when it is back, not a traceback per request.

Redis carries the per-user limits (:mod:`accounts.limits`), the cache that tells the
workers their upstream table changed (:mod:`gateway.following`) and the channel layer of
the console's live view.  Each of them goes on without it, so an outage is worth one
clear line in the log, whoever meets it first, and another when Redis answers again::

    Redis at redis:6379 unreachable: ConnectionRefusedError: …; rate limits fall back to
    none (requests are served without per-user limits), ...
    Redis at redis:6379 answers again after 42 s: per-user rate limits apply again.

What else fails in the meantime is logged at DEBUG.  A Redis that comes and goes is
reported at most once per :data:`WARN_EVERY` seconds.  The state is per Redis location
and per process; reporting costs a lock only when the state changes.
"""

from __future__ import annotations

import logging
import threading
import time
from urllib.parse import urlsplit

logger = logging.getLogger("kodify.redis")

WARN_EVERY = 60.0

FALLBACK = (
    "rate limits fall back to none (requests are served without per-user limits), the "
    "upstream table keeps its last state and the console's live view pauses until Redis "
    "answers again"
)


def redis_location(url: str) -> str:
    """``host:port`` (or the socket's path) of a Redis URL, without its credentials."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return parts.path or url
    try:
        port = parts.port or 6379
    except ValueError:
        port = 6379
    return f"{parts.hostname or 'localhost'}:{port}"


def is_outage(exc: BaseException) -> bool:
    """An error that says Redis cannot be reached (rather than a bug of the caller)."""
    if isinstance(exc, OSError):  # ConnectionError, TimeoutError, socket errors
        return True
    try:
        from redis import exceptions
    except ImportError:  # pragma: no cover - redis is a dependency
        return False
    return isinstance(exc, exceptions.ConnectionError | exceptions.TimeoutError)


class RedisOutage:
    """Whether one Redis is down as this process sees it, and what was said about it."""

    def __init__(self, location: str) -> None:
        self.location = location
        self.down = False
        self._since = 0.0
        self._reported = False  # the "unreachable" warning of this outage was logged
        self._warned_at = -WARN_EVERY
        self._lock = threading.Lock()

    def failed(self, exc: BaseException, *, where: str) -> None:
        """``where`` (what was being done) met an unreachable Redis."""
        report = False
        with self._lock:
            if not self.down:
                now = time.monotonic()
                self.down, self._since = True, now
                report = self._reported = now - self._warned_at >= WARN_EVERY
                if report:
                    self._warned_at = now
        if report:
            logger.warning(
                "Redis at %s unreachable: %s; %s.", self.location, describe(exc), FALLBACK
            )
        else:
            logger.debug("Redis at %s still unreachable (%s): %s", self.location, where, exc)

    def answered(self) -> None:
        """Redis answered: the end of the outage, if there was one."""
        if not self.down:  # the hot path: no lock
            return
        with self._lock:
            if not self.down:
                return
            self.down = False
            lasted, reported = time.monotonic() - self._since, self._reported
        if reported:
            logger.warning(
                "Redis at %s answers again after %.0f s: per-user rate limits apply again.",
                self.location,
                lasted,
            )


def describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


_outages: dict[str, RedisOutage] = {}
_outages_lock = threading.Lock()


def outage(url: str) -> RedisOutage:
    """The state of the Redis at ``url`` (one per location and process)."""
    location = redis_location(url)
    found = _outages.get(location)
    if found is None:
        with _outages_lock:
            found = _outages.setdefault(location, RedisOutage(location))
    return found


def settings_redis_failed(exc: BaseException, *, where: str) -> bool:
    """The cache or the channel layer (both on ``REDIS_URL``) failed with ``exc``: True
    when that is a Redis outage, now reported; False for any other error (the caller's
    to log)."""
    from django.conf import settings

    if not settings.REDIS_URL or not is_outage(exc):
        return False
    outage(settings.REDIS_URL).failed(exc, where=where)
    return True


def settings_redis_answered() -> None:
    """The cache or the channel layer answered: the end of an outage of ``REDIS_URL``."""
    from django.conf import settings

    if settings.REDIS_URL:
        outage(settings.REDIS_URL).answered()


def reset() -> None:
    """Forget every outage (tests)."""
    with _outages_lock:
        _outages.clear()
