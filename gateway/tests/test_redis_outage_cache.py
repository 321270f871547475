"""A Redis outage met by the upstream table's follower (the cache) is one warning about
Redis: not a traceback each poll, and not "reading the upstreams from the database
failed" (the database answers; the table loads from it)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from django.test import override_settings

from accounts.redis_outage import redis_location

# The same clean slate and log capture as the accounts tests of the outage.
from accounts.tests.test_redis_outage import fresh_state, warnings  # noqa: F401
from gateway import following, selectors
from kodify_site.testing import free_port

pytestmark = pytest.mark.smoke


@pytest.mark.django_db
def test_a_cache_outage_is_not_a_database_failure(caplog: pytest.LogCaptureFixture) -> None:
    caught = caplog
    caught.set_level(logging.DEBUG, logger="kodify")
    url = f"redis://127.0.0.1:{free_port()}/0"
    caches: dict[str, Any] = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": url}
    }
    with override_settings(REDIS_URL=url, CACHES=caches):
        for _ in range(10):  # the follower polls every few seconds
            assert following._read_versions() == following._UNREAD
        snapshot = selectors.gateway_snapshot()  # the database answers: the table loads
    assert (snapshot.config_version, snapshot.health_version) == ("", "")
    [down] = warnings(caught)
    assert down.getMessage().startswith(f"Redis at {redis_location(url)} unreachable: ")
    assert down.exc_info is None
    assert "database" not in caught.text.lower()
