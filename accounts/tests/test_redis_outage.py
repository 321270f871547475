"""A Redis outage is one warning ("Redis at host:port unreachable: …") and, once Redis
answers again, one more: not a traceback per request, and never "the database"."""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from django.test import override_settings

from accounts import redis_outage
from accounts.auth import AuthMode, Principal
from accounts.limits import NO_SLOT, RedisLimiter
from accounts.redis_outage import outage, redis_location
from kodify_site.testing import free_port, wait_until

pytestmark = pytest.mark.smoke


@pytest.fixture(autouse=True)
def fresh_state() -> Iterator[None]:
    redis_outage.reset()
    yield
    redis_outage.reset()


@pytest.fixture
def caught(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="kodify")
    return caplog


def warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.WARNING]


def user() -> Principal:
    return Principal(mode=AuthMode.PER_USER, user_id=1, username="ada")


def start_redis(port: int, directory: Path) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(directory),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        # Infrastructure, not the product: without the clock shift of `make test-future`
        # (a preloaded libfaketime keeps redis-server from starting).
        env={k: v for k, v in os.environ.items() if not k.startswith(("LD_PRELOAD", "FAKETIME"))},
    )
    client = redis.Redis(port=port, socket_connect_timeout=0.5)

    def answers() -> bool:
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False

    assert wait_until(answers), "the throwaway redis-server did not start"
    client.close()
    return server


def test_locations_never_show_credentials() -> None:
    assert redis_location("redis://user:secret@redis.internal:6380/2") == "redis.internal:6380"
    assert redis_location("rediss://:pw@cache/0") == "cache:6379"
    assert redis_location("unix:///run/redis.sock?db=1") == "/run/redis.sock"


async def test_the_limiter_warns_once_per_outage_and_once_when_redis_is_back(
    caught: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    port = free_port()  # nothing listens there yet
    limiter = RedisLimiter(
        f"redis://127.0.0.1:{port}/0", requests_per_minute=100, max_concurrent=10
    )
    for _ in range(30):  # a busy worker: every request meets the outage
        limiter._skip_until = 0.0  # as if RETRY_REDIS_AFTER had passed each time
        assert await limiter.acquire(user()) is NO_SLOT
    [down] = warnings(caught)
    assert down.name == "kodify.redis" and down.exc_info is None
    message = down.getMessage()
    assert message.startswith(f"Redis at 127.0.0.1:{port} unreachable: ")
    assert "rate limits fall back to none" in message
    assert "database" not in caught.text.lower()

    server = start_redis(port, tmp_path)
    try:
        limiter._skip_until = 0.0
        slot = await limiter.acquire(user())
        assert slot is not NO_SLOT  # limited again
        await slot.release()
        [_, back] = warnings(caught)
        assert back.getMessage().startswith(f"Redis at 127.0.0.1:{port} answers again after")
        assert "rate limits apply again" in back.getMessage()
        slot = await limiter.acquire(user())
        await slot.release()
        assert len(warnings(caught)) == 2  # nothing more while it answers
    finally:
        server.terminate()
        server.wait(timeout=30)
        await limiter.aclose()


def test_a_redis_that_comes_and_goes_is_reported_at_most_once_a_minute(
    caught: pytest.LogCaptureFixture,
) -> None:
    state = outage("redis://127.0.0.1:1/0")
    for _ in range(5):
        state.failed(ConnectionRefusedError("refused"), where="test")
        state.answered()
    down, back = (r.getMessage() for r in warnings(caught))
    assert down.startswith("Redis at 127.0.0.1:1 unreachable: ConnectionRefusedError: refused;")
    assert back.startswith("Redis at 127.0.0.1:1 answers again after ")


async def test_the_live_view_reports_the_outage_not_a_traceback_per_batch(
    caught: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from journal import live

    class DownLayer:
        async def group_send(self, group: str, message: Any) -> None:
            raise redis.ConnectionError("Error 111 connecting to 127.0.0.1:1. Connection refused.")

    monkeypatch.setattr(live, "get_channel_layer", DownLayer)
    with override_settings(REDIS_URL="redis://127.0.0.1:1/0"):
        for _ in range(20):
            await live.broadcast_summaries([{"request_id": "r"}])
    [down] = warnings(caught)
    assert down.getMessage().startswith("Redis at 127.0.0.1:1 unreachable: ConnectionError")
    assert down.exc_info is None
