"""Per-user limits at the gateway: requests per minute and requests in flight at once.

Only the per-user mode has users, so only it has limits (:func:`get_limiter` is None in
the dummy and one-token modes).  A user's own ``requests_per_minute`` / ``max_concurrent``
override ``KODIFY_RATE_LIMIT_PER_MINUTE`` / ``KODIFY_MAX_CONCURRENT``; 0 means no limit.

Usage, around the upstream call::

    async with limiter.slot(principal):   # or: slot = await limiter.acquire(principal)
        ...                                #     ... finally: await slot.release()

Over a limit, :class:`LimitExceeded` carries the OpenAI error code and the seconds after
which a retry can succeed (the gateway answers 429 with ``Retry-After``).

The rate is a **sliding window**: at most N requests in any 60 seconds, counted when
admitted (a refused request does not count).  It keeps the admission times of the last
minute, so memory per user is at most min(N, requests in the last minute), and
``Retry-After`` is exact: when the oldest admission that matters leaves the window.

Backends:

* :class:`RedisLimiter` when ``REDIS_URL`` is set: the limits hold across workers and
  hosts.  One Lua script checks and records both limits atomically in one round trip,
  using Redis' clock.  Each concurrency slot is a member of a sorted set scored with a
  lease expiry; the worker renews the leases of its slots in the background, so a slot
  of a crashed worker frees itself within its lease (30 s), and every key expires when
  idle.  **If Redis is unreachable the limiter fails open**: requests are served
  without limits, one warning says so (and another when Redis is back:
  :mod:`accounts.redis_outage`), and Redis is tried again after ``RETRY_REDIS_AFTER``
  seconds.
* :class:`LocalLimiter` otherwise (embedded defaults, one process): the same rules in
  this process's memory.

A slot is released once, whatever happens to the request: a normal end, an error, or a
client that went away (the gateway cancels the request's task and releases in its
``finally``; a release through Redis is shielded, so a second cancellation cannot stop
it either).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import logging
import math
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from django.conf import settings

from accounts.auth import AuthMode, Principal, auth_mode
from accounts.redis_client import RedisClient, RedisError, script_sha
from accounts.redis_outage import outage

logger = logging.getLogger("kodify.limits")

WINDOW_SECONDS = 60.0
# Retry-After of a concurrency refusal: requests usually end within a second or two.
CONCURRENCY_RETRY_AFTER = 1


class LimitExceeded(Exception):
    """A request over one of the user's limits; ``str(exc)`` is safe to show the caller."""

    def __init__(self, message: str, *, code: str, retry_after: float) -> None:
        super().__init__(message)
        self.code = code
        # Whole seconds, rounded up: a client that waits that long is not refused again.
        self.retry_after = max(1, math.ceil(retry_after))


def _rate_exceeded(limit: int, wait: float) -> LimitExceeded:
    return LimitExceeded(
        f"Rate limit reached: at most {limit} requests per minute for this user. "
        f"Retry in {max(1, math.ceil(wait))} s.",
        code="rate_limit_exceeded",
        retry_after=wait,
    )


def _concurrency_exceeded(limit: int) -> LimitExceeded:
    return LimitExceeded(
        f"Too many concurrent requests: at most {limit} in flight at once for this user.",
        code="too_many_concurrent_requests",
        retry_after=CONCURRENCY_RETRY_AFTER,
    )


class Slot:
    """A held place in the user's limits; releasing it more than once does nothing."""

    async def release(self) -> None:
        """Give the place back, and return once every worker would see it free."""
        self.release_nowait()

    def release_nowait(self) -> None:
        """Give the place back without waiting for the limits' store to confirm it.

        Through Redis the command is written before this returns: anything the caller
        sends afterwards (the end of the answer, and so the client's next request,
        whichever worker takes it) reaches Redis after it, and Redis handles the commands
        in the order they become readable.  The request path saves a round trip with it.
        """


NO_SLOT = Slot()  # nothing to give back: no concurrency limit, or Redis unreachable


class Limiter:
    """The common part: which limits apply to whom, and the context-manager form."""

    def __init__(self, *, requests_per_minute: int, max_concurrent: int) -> None:
        self.requests_per_minute = requests_per_minute
        self.max_concurrent = max_concurrent

    def limits_for(self, principal: Principal) -> tuple[int, int]:
        """``(requests per minute, in flight)`` for this caller; 0 is no limit."""
        if principal.user_id is None:
            return 0, 0
        rpm = principal.requests_per_minute
        concurrent = principal.max_concurrent
        return (
            self.requests_per_minute if rpm is None else rpm,
            self.max_concurrent if concurrent is None else concurrent,
        )

    async def acquire(self, principal: Principal) -> Slot:
        """Admit one request of ``principal`` or raise :class:`LimitExceeded`."""
        raise NotImplementedError

    @asynccontextmanager
    async def slot(self, principal: Principal) -> AsyncIterator[Slot]:
        held = await self.acquire(principal)
        try:
            yield held
        finally:
            await held.release()


# -- in this process -------------------------------------------------------------------


@dataclass(slots=True)
class _UserState:
    admitted: deque[float] = field(default_factory=deque)  # admission times, oldest first
    in_flight: int = 0


class _LocalSlot(Slot):
    __slots__ = ("_state",)

    def __init__(self, state: _UserState) -> None:
        self._state: _UserState | None = state

    def release_nowait(self) -> None:
        state, self._state = self._state, None
        if state is not None:
            state.in_flight -= 1


class LocalLimiter(Limiter):
    """Limits kept in this process: exact for one worker, per worker for several."""

    def __init__(
        self,
        *,
        requests_per_minute: int,
        max_concurrent: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(requests_per_minute=requests_per_minute, max_concurrent=max_concurrent)
        self._clock = clock
        self._users: dict[int, _UserState] = {}
        self._next_sweep = clock() + WINDOW_SECONDS

    async def acquire(self, principal: Principal) -> Slot:
        rpm, concurrent = self.limits_for(principal)
        if not rpm and not concurrent:
            return NO_SLOT
        assert principal.user_id is not None  # limits_for gives none without a user
        now = self._clock()
        if now >= self._next_sweep:
            self._sweep(now)
        state = self._users.get(principal.user_id)
        if state is None:
            state = self._users[principal.user_id] = _UserState()
        if concurrent and state.in_flight >= concurrent:
            raise _concurrency_exceeded(concurrent)
        if rpm:
            admitted = state.admitted
            horizon = now - WINDOW_SECONDS
            while admitted and admitted[0] <= horizon:
                admitted.popleft()
            if len(admitted) >= rpm:
                # The user's limit may have dropped below what the window holds: the
                # window frees when enough admissions have left it, not just the oldest.
                raise _rate_exceeded(rpm, admitted[len(admitted) - rpm] + WINDOW_SECONDS - now)
            admitted.append(now)
        if not concurrent:
            return NO_SLOT
        state.in_flight += 1
        return _LocalSlot(state)

    def _sweep(self, now: float) -> None:
        # Forget users with nothing in flight and nothing in the window, so the table
        # holds only recent callers however many users come and go.
        horizon = now - WINDOW_SECONDS
        idle = [
            user
            for user, state in self._users.items()
            if not state.in_flight and (not state.admitted or state.admitted[-1] <= horizon)
        ]
        for user in idle:
            del self._users[user]
        self._next_sweep = now + WINDOW_SECONDS


# -- across workers, through Redis ---------------------------------------------------------

# KEYS[1]: the user's admissions (sorted set, score = time in ms);
# KEYS[2]: the user's slots in flight (sorted set, score = lease expiry in ms).
# ARGV: rpm limit, concurrency limit (0 = none), slot id, lease ms, window ms.
# Returns {0, 0} admitted, {1, ms until the window frees} or {2, 0} refused.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rpm, concurrent = tonumber(ARGV[1]), tonumber(ARGV[2])
local lease, window = tonumber(ARGV[4]), tonumber(ARGV[5])
if concurrent > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  if redis.call('ZCARD', KEYS[2]) >= concurrent then
    return {2, 0}
  end
end
if rpm > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
  local count = redis.call('ZCARD', KEYS[1])
  if count >= rpm then
    local freeing = redis.call('ZRANGE', KEYS[1], count - rpm, count - rpm, 'WITHSCORES')
    return {1, tonumber(freeing[2]) + window - now}
  end
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], window)
end
if concurrent > 0 then
  redis.call('ZADD', KEYS[2], now + lease, ARGV[3])
  redis.call('PEXPIRE', KEYS[2], lease)
end
return {0, 0}
"""

# KEYS: slot sets; ARGV[1]: lease ms, then one slot id per key. XX: a slot already
# released (or expired) is not brought back.
_RENEW = """
local t = redis.call('TIME')
local expiry = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, 'XX', expiry, ARGV[i + 1])
  redis.call('PEXPIRE', key, tonumber(ARGV[1]))
end
return #KEYS
"""

_ADMITTED, _OVER_RATE, _OVER_CONCURRENCY = 0, 1, 2
_ACQUIRE_SHA, _RENEW_SHA = script_sha(_ACQUIRE), script_sha(_RENEW)


# What makes the limiter fail open: the network, or Redis refusing (out of memory, a
# read-only replica...).  Anything else is a bug and must not pass for an outage.
_UNREACHABLE = (OSError, RedisError)


class _RedisSlot(Slot):
    __slots__ = ("_key", "_limiter", "_member")

    def __init__(self, limiter: RedisLimiter, key: bytes, member: bytes) -> None:
        self._limiter: RedisLimiter | None = limiter
        self._key = key
        self._member = member

    async def release(self) -> None:
        limiter, self._limiter = self._limiter, None
        if limiter is not None:
            await limiter._release(self._key, self._member)

    def release_nowait(self) -> None:
        limiter, self._limiter = self._limiter, None
        if limiter is not None:
            limiter._held.pop(self._member, None)
            limiter._forget(self._key, self._member, now=True)


class RedisLimiter(Limiter):
    """Limits shared by every worker through Redis; fails open when Redis is unreachable.

    Each event loop keeps one connection to Redis and pipelines every request's command
    on it (answers come back in order): :class:`accounts.redis_client.RedisClient`.  It
    is not redis-py's client: with 32 concurrent requests on a busy 2-core machine,
    redis-py's pool, health checks and timeout tasks cost 130 to 270 us of CPU per request
    (acquire and release), which halved a worker's RPS in per-user mode; this connection
    cost 30 to 55 us in the same measurement.
    """

    RETRY_REDIS_AFTER = 2.0

    def __init__(
        self,
        url: str,
        *,
        requests_per_minute: int,
        max_concurrent: int,
        prefix: str = "kodify:limits:",
        timeout: float = 1.0,
        lease_seconds: float = 30.0,
    ) -> None:
        super().__init__(requests_per_minute=requests_per_minute, max_concurrent=max_concurrent)
        self.url = url
        self.prefix = prefix
        self.timeout = timeout
        self.lease_seconds = lease_seconds
        self._lease_arg = b"%d" % (lease_seconds * 1000)
        self._window_arg = b"%d" % (WINDOW_SECONDS * 1000)
        self._ids = itertools.count()
        self._worker = secrets.token_hex(6).encode()  # slot ids must not collide across workers
        self._encoded_keys: dict[int, tuple[bytes, bytes]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._redis: RedisClient | None = None
        self._held: dict[bytes, bytes] = {}  # slot id -> its key, for the lease renewal
        self._renewal: asyncio.Task[None] | None = None
        self._skip_until = 0.0
        self._outage = outage(url)

    def keys(self, user_id: int) -> tuple[str, str]:
        # The braces keep a user's two keys in one Redis Cluster slot.
        base = f"{self.prefix}{{u{user_id}}}"
        return f"{base}:rpm", f"{base}:in-flight"

    def _keys_bytes(self, user_id: int) -> tuple[bytes, bytes]:
        keys = self._encoded_keys.get(user_id)
        if keys is None:
            if len(self._encoded_keys) >= 10_000:
                self._encoded_keys.clear()
            rate_key, slots_key = self.keys(user_id)
            keys = self._encoded_keys[user_id] = (rate_key.encode(), slots_key.encode())
        return keys

    def _connection(self) -> RedisClient:
        # A connection belongs to the event loop it was opened on: one per loop.
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._redis is None:
            self._redis = RedisClient(self.url, self.timeout)
            self._loop = loop
            self._held = {}
            self._renewal = None
        return self._redis

    async def acquire(self, principal: Principal) -> Slot:
        rpm, concurrent = self.limits_for(principal)
        if not rpm and not concurrent:
            return NO_SLOT
        assert principal.user_id is not None
        if self._skip_until and time.monotonic() < self._skip_until:
            return NO_SLOT
        rate_key, slots_key = self._keys_bytes(principal.user_id)
        member = b"%s:%d" % (self._worker, next(self._ids))
        args = (b"2", rate_key, slots_key, b"%d" % rpm, b"%d" % concurrent, member,
                self._lease_arg, self._window_arg)  # fmt: skip
        try:
            verdict, wait_ms = await self._connection().eval(_ACQUIRE_SHA, _ACQUIRE, *args)
        except asyncio.CancelledError:
            # The script may have run: give back the slot it may have taken.
            if concurrent:
                self._forget(slots_key, member)
            raise
        except _UNREACHABLE as exc:  # serve rather than refuse
            self._unreachable(exc)
            return NO_SLOT
        self._skip_until = 0.0
        self._outage.answered()  # one attribute read unless Redis was down
        if verdict == _OVER_CONCURRENCY:
            raise _concurrency_exceeded(concurrent)
        if verdict == _OVER_RATE:
            raise _rate_exceeded(rpm, int(wait_ms) / 1000)
        if not concurrent:
            return NO_SLOT
        self._held[member] = slots_key
        self._ensure_renewal()
        return _RedisSlot(self, slots_key, member)

    async def _release(self, key: bytes, member: bytes) -> None:
        self._held.pop(member, None)
        # Awaited so that the slot is free in Redis before the client sees the end of
        # the answer.  Shielded: a second cancellation must not stop it; the command is
        # sent anyway, and its failure is reported by _released.
        with contextlib.suppress(Exception):
            await asyncio.shield(self._forget(key, member))

    def _forget(self, key: bytes, member: bytes, *, now: bool = False) -> asyncio.Future[Any]:
        future = self._connection().send(b"ZREM", key, member, now=now)
        future.add_done_callback(self._released)
        return future

    def _released(self, future: asyncio.Future[Any]) -> None:
        if not future.cancelled() and (exc := future.exception()) is not None:
            self._unreachable(exc)  # the lease frees the slot anyway

    async def drain(self) -> None:
        """Wait until Redis has handled every command this limiter sent so far."""
        await self._connection().send(b"PING")  # answers come in order

    def _ensure_renewal(self) -> None:
        task = self._renewal
        if task is None or task.done():
            self._renewal = asyncio.get_running_loop().create_task(self._renew_forever())

    async def _renew_forever(self) -> None:
        # Requests can outlive a lease (long streams): renew this worker's slots well
        # before their leases end, in one round trip for all of them.
        while self._held:
            await asyncio.sleep(self.lease_seconds / 3)
            held = list(self._held.items())
            if not held:
                break
            keys = [key for _, key in held]
            members = [member for member, _ in held]
            try:
                await self._connection().eval(
                    _RENEW_SHA, _RENEW, b"%d" % len(keys), *keys, self._lease_arg, *members
                )
            except _UNREACHABLE as exc:
                self._unreachable(exc)

    def _unreachable(self, exc: BaseException) -> None:
        self._skip_until = time.monotonic() + self.RETRY_REDIS_AFTER
        self._outage.failed(exc, where="per-user limits")

    async def aclose(self) -> None:
        """Stop renewing leases and close the connection (slots held are not released)."""
        if self._renewal is not None and not self._renewal.done():
            self._renewal.cancel()
        if self._redis is not None:
            self._redis.close()
        self._redis = None
        self._loop = None


def key_prefix() -> str:
    """Redis key prefix of this deployment's limits.

    User ids are unique only within one database, so the prefix names the database: two
    Kodify deployments (or test runs) sharing a Redis never count each other's users.
    """
    db = settings.DATABASES["default"]
    identity = (
        "|".join(str(db.get(part) or "") for part in ("ENGINE", "HOST", "PORT", "NAME"))
        + f"|{settings.USERS_TABLE or ''}"
    )
    digest = hashlib.sha256(identity.encode()).hexdigest()[:12]
    return f"{settings.REDIS_PREFIX}:limits:{digest}:"


@cache
def get_limiter() -> Limiter | None:
    """This process's limiter in per-user mode; None in the modes without users."""
    if auth_mode() is not AuthMode.PER_USER:
        return None
    rpm, concurrent = settings.KODIFY_RATE_LIMIT_PER_MINUTE, settings.KODIFY_MAX_CONCURRENT
    if settings.REDIS_URL:
        return RedisLimiter(
            settings.REDIS_URL,
            requests_per_minute=rpm,
            max_concurrent=concurrent,
            prefix=key_prefix(),
        )
    return LocalLimiter(requests_per_minute=rpm, max_concurrent=concurrent)
