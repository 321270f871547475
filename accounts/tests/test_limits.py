"""Per-user limits (accounts/limits.py): the in-process backend and the Redis one.

The Redis tests run against the real Redis at REDIS_URL, each under a key prefix of its
own, and are skipped when REDIS_URL is unset.  The Redis client itself (the protocol, the
connection) is tested without a Redis in test_redis_client.py.  End-to-end checks through
a running server are in gateway/tests/test_per_user.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from django.test import override_settings

from accounts import limits
from accounts.auth import AuthMode, Principal
from accounts.limits import (
    NO_SLOT,
    LimitExceeded,
    LocalLimiter,
    RedisLimiter,
    get_limiter,
    key_prefix,
)
from kodify_site.testing import WAIT_S, free_port

pytestmark = pytest.mark.smoke

REDIS_URL = os.environ.get("REDIS_URL")
needs_redis = pytest.mark.skipif(not REDIS_URL, reason="REDIS_URL is not set")


def user(user_id: int = 1, **limits: Any) -> Principal:
    return Principal(mode=AuthMode.PER_USER, user_id=user_id, username=f"u{user_id}", **limits)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def refused(limiter: Any, principal: Principal) -> LimitExceeded:
    with pytest.raises(LimitExceeded) as failure:
        await limiter.acquire(principal)
    return failure.value


# -- in this process -------------------------------------------------------------------


def local(rpm: int = 0, concurrent: int = 0) -> tuple[LocalLimiter, Clock]:
    clock = Clock()
    return LocalLimiter(requests_per_minute=rpm, max_concurrent=concurrent, clock=clock), clock


async def test_local_rate_is_a_sliding_window_with_an_exact_retry_after() -> None:
    limiter, clock = local(rpm=3)
    for offset in (0.0, 10.0, 20.0):
        clock.now += offset
        await limiter.acquire(user())
    clock.now += 5  # 35 s after the first
    error = await refused(limiter, user())
    assert error.code == "rate_limit_exceeded"
    assert error.retry_after == 25  # the first admission leaves the window at 60 s
    assert "3 requests per minute" in str(error)
    clock.now += 25  # exactly 60 s after the first: it has left the window
    await limiter.acquire(user())
    # Sliding, not fixed: the next one frees only when the second admission leaves.
    assert (await refused(limiter, user())).retry_after == 10


async def test_local_refused_requests_do_not_count() -> None:
    limiter, clock = local(rpm=1)
    await limiter.acquire(user())
    for _ in range(5):
        await refused(limiter, user())
    clock.now += 60
    await limiter.acquire(user())


async def test_local_users_have_separate_limits_and_their_own_values_win() -> None:
    limiter, _ = local(rpm=1, concurrent=1)
    await limiter.acquire(user(1))
    await limiter.acquire(user(2))  # another user: a count of its own
    await refused(limiter, user(1))
    generous = user(3, requests_per_minute=5, max_concurrent=0)
    for _ in range(5):
        await limiter.acquire(generous)
    assert (await refused(limiter, generous)).code == "rate_limit_exceeded"
    unlimited = user(4, requests_per_minute=0, max_concurrent=0)  # 0: no limit
    slots = [await limiter.acquire(unlimited) for _ in range(100)]
    assert all(slot is NO_SLOT for slot in slots)


async def test_local_defaults_of_zero_mean_no_limit_and_no_user_means_none() -> None:
    limiter, _ = local()
    for _ in range(1000):
        assert await limiter.acquire(user()) is NO_SLOT
    strict, _ = local(rpm=1, concurrent=1)
    anonymous = Principal(mode=AuthMode.PER_USER)
    for _ in range(3):
        assert await strict.acquire(anonymous) is NO_SLOT


async def test_local_a_lowered_limit_waits_for_enough_admissions_to_leave() -> None:
    limiter, clock = local(rpm=10)
    for _ in range(4):
        await limiter.acquire(user())
        clock.now += 10  # admissions at 0, 10, 20, 30; now 40
    # Lowered to 2: three admissions must leave; the third (at 20 s) does at 80 s.
    assert (await refused(limiter, user(requests_per_minute=2))).retry_after == 40


async def test_local_concurrency_counts_slots_until_released_once() -> None:
    limiter, _ = local(concurrent=2)
    first = await limiter.acquire(user())
    second = await limiter.acquire(user())
    error = await refused(limiter, user())
    assert (error.code, error.retry_after) == ("too_many_concurrent_requests", 1)
    await first.release()
    await first.release()  # a second release frees nothing more
    third = await limiter.acquire(user())
    await refused(limiter, user())
    await second.release()
    await third.release()
    await limiter.acquire(user())


async def test_local_a_concurrency_refusal_uses_no_rate() -> None:
    limiter, _ = local(rpm=2, concurrent=1)
    held = await limiter.acquire(user())
    for _ in range(3):
        assert (await refused(limiter, user())).code == "too_many_concurrent_requests"
    await held.release()
    await limiter.acquire(user())  # the second of two per minute


async def test_local_slot_is_released_when_the_request_fails_or_is_cancelled() -> None:
    limiter, _ = local(concurrent=1)
    with pytest.raises(RuntimeError):
        async with limiter.slot(user()):
            raise RuntimeError("upstream broke")
    entered = asyncio.Event()

    async def request() -> None:
        async with limiter.slot(user()):
            entered.set()
            await asyncio.Event().wait()  # a long stream

    task = asyncio.create_task(request())
    await entered.wait()
    await refused(limiter, user())
    task.cancel()  # the gateway's way of saying the client went away
    with pytest.raises(asyncio.CancelledError):
        await task
    async with limiter.slot(user()):
        pass


async def test_local_forgets_idle_users() -> None:
    limiter, clock = local(rpm=5, concurrent=5)
    held = await limiter.acquire(user(1))
    for user_id in range(2, 50):
        await (await limiter.acquire(user(user_id))).release()
    clock.now += 61
    await limiter.acquire(user(99))  # the sweep runs at most once a minute, on a request
    assert set(limiter._users) == {1, 99}  # user 1 still has a request in flight
    await held.release()


def test_get_limiter_exists_only_in_per_user_mode() -> None:
    cases: list[tuple[dict[str, Any], type]] = [
        ({"MTSAI_AUTH": False, "VLLM_API_KEY": None, "REDIS_URL": None}, type(None)),
        ({"MTSAI_AUTH": False, "VLLM_API_KEY": "k", "REDIS_URL": None}, type(None)),
        ({"MTSAI_AUTH": True, "REDIS_URL": None}, LocalLimiter),
        ({"MTSAI_AUTH": True, "REDIS_URL": "redis://127.0.0.1:1/0"}, RedisLimiter),
    ]
    try:
        for overrides, kind in cases:
            get_limiter.cache_clear()
            with override_settings(
                **overrides, KODIFY_RATE_LIMIT_PER_MINUTE=7, KODIFY_MAX_CONCURRENT=3
            ):
                limiter = get_limiter()
                assert type(limiter) is kind, overrides
                if limiter is not None:
                    assert (limiter.requests_per_minute, limiter.max_concurrent) == (7, 3)
    finally:
        get_limiter.cache_clear()


@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
def test_the_redis_keys_name_the_database() -> None:
    # User ids repeat between databases: deployments sharing a Redis must not mix.
    first = key_prefix()
    databases = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": "/elsewhere"}}
    with override_settings(DATABASES=databases):
        assert key_prefix() != first
    assert key_prefix() == first


async def test_redis_unreachable_fails_open_and_warns_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    limiter = RedisLimiter(
        f"redis://127.0.0.1:{free_port()}/0", requests_per_minute=1, max_concurrent=1
    )
    with caplog.at_level(logging.WARNING, logger="kodify.limits"):
        slots = [await limiter.acquire(user()) for _ in range(5)]
        limiter._skip_until = 0.0  # as if RETRY_REDIS_AFTER had passed: it tries again
        slots.append(await limiter.acquire(user()))
    assert all(slot is NO_SLOT for slot in slots)  # served, though over both limits
    warnings = [r for r in caplog.records if r.name == "kodify.redis"]  # accounts.redis_outage
    assert len(warnings) == 1
    assert "without per-user limits" in warnings[0].getMessage()
    await limiter.aclose()


# -- through Redis ---------------------------------------------------------------------


@pytest.fixture
async def redis() -> AsyncIterator[Any]:
    """A redis-py client of its own, to look at what the limiter left in Redis."""
    from redis.asyncio import Redis

    client = Redis.from_url(REDIS_URL or "")
    yield client
    await client.aclose()


@pytest.fixture
async def redis_prefix(redis: Any) -> AsyncIterator[str]:
    prefix = f"kodify-test:{uuid.uuid4().hex}:"
    yield prefix
    keys = [key async for key in redis.scan_iter(match=prefix + "*")]
    if keys:
        await redis.delete(*keys)


def redis_limiter(prefix: str, rpm: int = 0, concurrent: int = 0, **kwargs: Any) -> RedisLimiter:
    assert REDIS_URL
    return RedisLimiter(
        REDIS_URL, requests_per_minute=rpm, max_concurrent=concurrent, prefix=prefix, **kwargs
    )


@needs_redis
async def test_redis_rate_holds_across_workers(redis_prefix: str, redis: Any) -> None:
    first, second = redis_limiter(redis_prefix, rpm=3), redis_limiter(redis_prefix, rpm=3)
    await first.acquire(user())
    await second.acquire(user())
    await first.acquire(user())
    error = await refused(second, user())
    assert error.code == "rate_limit_exceeded"
    assert 55 <= error.retry_after <= 60
    await refused(first, user())
    await first.acquire(user(2))  # another user
    rate_key, _ = first.keys(1)
    assert await redis.zcard(rate_key) == 3  # refusals were not recorded
    assert 0 < await redis.pttl(rate_key) <= 60_000  # an idle user's key goes
    await first.aclose()
    await second.aclose()


@needs_redis
async def test_redis_own_values_win_and_zero_is_no_limit(redis_prefix: str) -> None:
    limiter = redis_limiter(redis_prefix, rpm=1, concurrent=1)
    for _ in range(3):
        assert await limiter.acquire(user(requests_per_minute=0, max_concurrent=0)) is NO_SLOT
    slots = [await limiter.acquire(user(2, requests_per_minute=2, max_concurrent=2))]
    slots.append(await limiter.acquire(user(2, requests_per_minute=2, max_concurrent=2)))
    assert (await refused(limiter, user(2, max_concurrent=2))).code == (
        "too_many_concurrent_requests"
    )
    for slot in slots:
        await slot.release()
    assert (await refused(limiter, user(2, requests_per_minute=2))).code == "rate_limit_exceeded"
    await limiter.aclose()


@needs_redis
async def test_redis_concurrency_holds_across_workers_until_released(
    redis_prefix: str, redis: Any
) -> None:
    first = redis_limiter(redis_prefix, concurrent=2)
    second = redis_limiter(redis_prefix, concurrent=2)
    one = await first.acquire(user())
    two = await second.acquire(user())
    error = await refused(first, user())
    assert (error.code, error.retry_after) == ("too_many_concurrent_requests", 1)
    await two.release()
    await two.release()  # once only
    three = await first.acquire(user())
    await refused(second, user())
    _, slots_key = first.keys(1)
    assert await redis.zcard(slots_key) == 2
    await one.release()
    await three.release()
    assert await redis.zcard(slots_key) == 0
    await first.aclose()
    await second.aclose()


@needs_redis
async def test_a_slot_released_without_waiting_is_free_for_the_next_command_of_any_worker(
    redis_prefix: str, redis: Any
) -> None:
    first = redis_limiter(redis_prefix, concurrent=1)
    second = redis_limiter(redis_prefix, concurrent=1)
    for _ in range(20):  # a race would show in some of them
        slot = await first.acquire(user())
        await refused(second, user())
        slot.release_nowait()  # written to Redis before it returns, not awaited
        slot.release_nowait()  # once only
        slot = await second.acquire(user())
        await refused(first, user())
        await slot.release()
    _, slots_key = first.keys(1)
    assert await redis.zcard(slots_key) == 0
    assert not first._held and not second._held  # nothing left to renew
    await first.aclose()
    await second.aclose()


async def test_a_local_slot_released_without_waiting_is_free_at_once() -> None:
    limiter = LocalLimiter(requests_per_minute=0, max_concurrent=1)
    slot = await limiter.acquire(user())
    slot.release_nowait()
    slot.release_nowait()
    again = await limiter.acquire(user())
    await refused(limiter, user())
    await again.release()


@needs_redis
async def test_redis_slot_is_released_when_the_request_is_cancelled(
    redis_prefix: str, redis: Any
) -> None:
    limiter = redis_limiter(redis_prefix, concurrent=1)
    entered = asyncio.Event()

    async def request() -> None:
        async with limiter.slot(user()):
            entered.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(request())
    await entered.wait()
    await refused(limiter, user())
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    _, slots_key = limiter.keys(1)
    assert await redis.zcard(slots_key) == 0
    await limiter.aclose()


@needs_redis
async def test_redis_a_slot_taken_by_a_cancelled_acquire_is_given_back(
    redis_prefix: str, redis: Any
) -> None:
    limiter = redis_limiter(redis_prefix, concurrent=1)
    await (await limiter.acquire(user())).release()  # the script is loaded now
    connection = limiter._connection()
    send = connection.send
    ran = asyncio.Event()

    def answer_never_arrives(*args: bytes, now: bool = False) -> asyncio.Future[Any]:
        sent = send(*args, now=now)
        if args[0] != b"EVALSHA":
            return sent
        sent.add_done_callback(lambda done: ran.set())  # Redis took the slot...
        return asyncio.get_running_loop().create_future()  # ...the answer never comes

    connection.send = answer_never_arrives  # type: ignore[method-assign]
    task = asyncio.create_task(limiter.acquire(user()))
    await ran.wait()
    _, slots_key = limiter.keys(1)
    assert await redis.zcard(slots_key) == 1
    task.cancel()  # the client went away while the request waited for Redis
    with pytest.raises(asyncio.CancelledError):
        await task
    await limiter.drain()
    assert await redis.zcard(slots_key) == 0
    await limiter.aclose()


@needs_redis
async def test_redis_slots_of_a_crashed_worker_free_themselves(redis_prefix: str) -> None:
    crashed = redis_limiter(redis_prefix, concurrent=1, lease_seconds=0.3)
    alive = redis_limiter(redis_prefix, concurrent=1, lease_seconds=0.3)
    await crashed.acquire(user())
    await crashed.aclose()  # stops renewing its lease, never releases
    await refused(alive, user())
    deadline = time.monotonic() + WAIT_S
    while True:  # bounded observation: the lease ends 0.3 s after it was taken
        try:
            slot = await alive.acquire(user())
            break
        except LimitExceeded:
            assert time.monotonic() < deadline, "the crashed worker's slot never expired"
            await asyncio.sleep(0.05)
    await slot.release()
    await alive.aclose()


@needs_redis
async def test_redis_a_long_request_keeps_its_slot_past_the_lease(redis_prefix: str) -> None:
    # Renewed every third of a lease: a loop stalled for less than two thirds of one
    # (a busy machine) still keeps the slot.
    holder = redis_limiter(redis_prefix, concurrent=1, lease_seconds=1.0)
    other = redis_limiter(redis_prefix, concurrent=1, lease_seconds=1.0)
    slot = await holder.acquire(user())
    until = time.monotonic() + 2.5  # more than two leases
    while time.monotonic() < until:
        await refused(other, user())
        await asyncio.sleep(0.05)
    await slot.release()
    await (await other.acquire(user())).release()
    await holder.aclose()
    await other.aclose()


@needs_redis
async def test_redis_acquire_is_one_command_on_one_shared_connection(redis_prefix: str) -> None:
    limiter = redis_limiter(redis_prefix, rpm=100, concurrent=10)
    await (await limiter.acquire(user())).release()  # connected, the script loaded
    redis = limiter._connection()
    connection = redis._connection
    sent: list[bytes] = []
    send = redis.send

    def recording(*args: bytes, now: bool = False) -> asyncio.Future[Any]:
        sent.append(args[0])
        return send(*args, now=now)

    redis.send = recording  # type: ignore[method-assign]
    slot = await limiter.acquire(user())
    assert sent == [b"EVALSHA"]
    await slot.release()
    assert sent == [b"EVALSHA", b"ZREM"]
    slots = await asyncio.gather(*(limiter.acquire(user(n)) for n in range(8)))
    await asyncio.gather(*(slot.release() for slot in slots))
    assert sent[2:] == [b"EVALSHA"] * 8 + [b"ZREM"] * 8
    assert redis._connection is connection  # all pipelined on the one connection
    await limiter.aclose()


@needs_redis
async def test_redis_without_the_script_loaded_sends_it(
    redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As after a restart of Redis (a SCRIPT FLUSH would disturb others sharing it): the
    # script Redis is asked for by its hash is unknown there.
    monkeypatch.setattr(limits, "_ACQUIRE_SHA", b"0" * 40)
    limiter = redis_limiter(redis_prefix, rpm=2)
    await limiter.acquire(user())
    await limiter.acquire(user())
    assert (await refused(limiter, user())).code == "rate_limit_exceeded"
    await limiter.aclose()


# -- the connection to Redis -----------------------------------------------------------


async def test_a_redis_that_never_answers_fails_open_after_the_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # reads everything, answers nothing

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    limiter = RedisLimiter(
        f"redis://127.0.0.1:{port}/0", requests_per_minute=1, max_concurrent=1, timeout=0.2
    )
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="kodify.limits"):
        assert await limiter.acquire(user()) is NO_SLOT
    # It waited for its timeout, then gave up (a generous bound: the machine may be busy).
    assert 0.15 <= time.monotonic() - started < WAIT_S
    assert "no answer from Redis" in caplog.text
    await limiter.aclose()
    server.close()


@needs_redis
def test_redis_limits_work_on_uvloop(redis_prefix: str) -> None:
    import uvloop

    async def scenario() -> None:  # production's event loop (uvicorn --loop uvloop)
        limiter = redis_limiter(redis_prefix, rpm=2, concurrent=1)
        slot = await limiter.acquire(user())
        assert (await refused(limiter, user())).code == "too_many_concurrent_requests"
        await slot.release()
        await (await limiter.acquire(user())).release()
        assert (await refused(limiter, user())).code == "rate_limit_exceeded"
        await limiter.aclose()

    uvloop.run(scenario())


@needs_redis
async def test_redis_connection_lost_is_opened_again(redis_prefix: str, redis: Any) -> None:
    limiter = redis_limiter(redis_prefix, rpm=3)
    await limiter.acquire(user())
    own_id = await limiter._connection().send(b"CLIENT", b"ID")
    first = limiter._connection()._connection
    await redis.client_kill_filter(_id=own_id)  # as when Redis restarts or a proxy drops it
    with contextlib.suppress(ConnectionError):  # a command caught by the loss fails
        await limiter.drain()
    await limiter.acquire(user())  # on a new connection, and the count goes on
    assert limiter._connection()._connection is not first
    await limiter.acquire(user())
    assert (await refused(limiter, user())).code == "rate_limit_exceeded"
    await limiter.aclose()
