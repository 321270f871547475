"""REDIS_URL switches the cache, the channel layer and Celery to Redis; DB_URL to PostgreSQL.

These run in the PostgreSQL + Redis pass; on embedded defaults the in-process
equivalents are checked instead.
"""

from __future__ import annotations

import os
import uuid

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.cache import cache
from django.db import connection

from kodify_site.celery import app as celery_app

with_redis = pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs REDIS_URL")
without_redis = pytest.mark.skipif(bool(os.environ.get("REDIS_URL")), reason="REDIS_URL is set")


@with_redis
def test_cache_lives_in_redis() -> None:
    import redis

    key = f"probe-{uuid.uuid4().hex}"
    cache.set(key, "value", 30)
    client = redis.Redis.from_url(settings.REDIS_URL)
    assert any(key in name.decode() for name in client.scan_iter(match=f"*{key}*"))
    assert cache.get(key) == "value"
    cache.delete(key)


@with_redis
def test_channel_layer_round_trip_through_redis() -> None:
    layer = get_channel_layer()
    assert type(layer).__module__.startswith("channels_redis")

    async def round_trip() -> dict:
        channel = await layer.new_channel()
        await layer.send(channel, {"type": "probe.message", "text": "hello"})
        return await layer.receive(channel)

    assert async_to_sync(round_trip)()["text"] == "hello"


@with_redis
def test_celery_uses_redis_as_broker_and_does_not_run_tasks_eagerly() -> None:
    assert celery_app.conf.broker_url == settings.REDIS_URL
    assert celery_app.conf.task_always_eager is False
    with celery_app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1)


@pytest.mark.smoke
@without_redis
def test_embedded_defaults_need_no_service() -> None:
    assert str(settings.CACHES["default"]["BACKEND"]).endswith("LocMemCache")
    assert str(settings.CHANNEL_LAYERS["default"]["BACKEND"]).endswith("InMemoryChannelLayer")
    assert celery_app.conf.task_always_eager is True
    assert settings.DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3"


@pytest.mark.django_db
def test_main_database_follows_db_url() -> None:
    expected = "postgresql" if os.environ.get("DB_URL") else "sqlite"
    assert connection.vendor == expected
