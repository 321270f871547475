"""Console changes reach every worker of a running server within seconds, with no restart.

The test writes the database and the cache as the console does (through the services),
and watches where two uvicorn workers send their requests.  Needs the shared PostgreSQL
and Redis of the full run: the server must see this process's writes and stamps.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from gateway import services
from gateway.models import UpstreamServer
from gateway.tests.fake_upstream import FakeUpstream, FakeUpstreamServer
from kodify_site.testing import (
    WAIT_S,
    KodifyServer,
    console_applied,
    console_version,
    every_worker,
)

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not (os.environ.get("DB_URL") and os.environ.get("REDIS_URL")),
        reason="the server and the test share PostgreSQL and Redis only in the full run",
    ),
]

MODEL = "shared-model"
BODY = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def fakes() -> Iterator[tuple[FakeUpstreamServer, FakeUpstreamServer]]:
    first = FakeUpstreamServer(FakeUpstream(models=(MODEL,))).start()
    second = FakeUpstreamServer(FakeUpstream(models=(MODEL,))).start()
    yield first, second
    first.stop()
    second.stop()
    UpstreamServer.objects.filter(url=second.url).delete()
    services.update_gateway_setting(max_n=None, default_max_tokens=None)


def chat(server: KodifyServer, **fields: Any) -> int:
    """One chat request on a new connection (the kernel picks the worker)."""
    return httpx.post(
        server.url + "/v1/chat/completions", json={**BODY, **fields}, timeout=WAIT_S
    ).status_code


def test_an_upstream_added_in_the_console_takes_traffic_without_a_restart(
    kodify_server: Any, fakes: tuple[FakeUpstreamServer, FakeUpstreamServer]
) -> None:
    first, second = fakes
    server: KodifyServer = kodify_server(
        {
            "KODIFY_UPSTREAMS": first.url,
            "KODIFY_CONFIG_POLL_INTERVAL": "0.2",
            "KODIFY_MODEL_REFRESH_INTERVAL": "1",
        },
        workers=2,
    )
    assert chat(server) == 200
    assert second.fake.seen == 0
    before = console_version(server, 2)

    services.save_upstream(upstream=UpstreamServer(url=second.url, name="added"))

    def second_is_healthy(report: dict[str, Any]) -> bool:
        return report["console_version"] != before and any(
            u["url"] == second.url and u["healthy"] for u in report["upstreams"]
        )

    assert every_worker(server, 2, second_is_healthy)
    # Every worker now alternates between the two on ties: eight requests in a row
    # give the new upstream some, whichever workers take them.
    for _ in range(8):
        assert chat(server) == 200
    assert second.fake.seen > 0

    upstream = UpstreamServer.objects.get(url=second.url)
    before = console_version(server, 2)
    services.set_upstreams_enabled(upstreams=[upstream], enabled=False)
    assert console_applied(server, 2, after=before)
    first_before, second_before = first.fake.seen, second.fake.seen
    for _ in range(8):
        assert chat(server) == 200
    assert (first.fake.seen, second.fake.seen) == (first_before + 8, second_before)


def test_console_settings_apply_on_every_worker(
    kodify_server: Any, fakes: tuple[FakeUpstreamServer, FakeUpstreamServer]
) -> None:
    first, _ = fakes
    server: KodifyServer = kodify_server(
        {"KODIFY_UPSTREAMS": first.url, "KODIFY_CONFIG_POLL_INTERVAL": "0.2", "MAX_N": "4"},
        workers=2,
    )
    before = console_version(server, 2)
    assert {chat(server, n=3) for _ in range(8)} == {200}

    services.update_gateway_setting(max_n=2, default_max_tokens=7)
    assert console_applied(server, 2, after=before)
    assert {chat(server, n=3) for _ in range(8)} == {400}
    for _ in range(4):  # the API description follows the console, on every worker
        document = httpx.get(server.url + "/v1/openapi.json", timeout=WAIT_S).json()
        request = document["components"]["schemas"]["ChatCompletionRequest"]
        assert request["properties"]["n"]["maximum"] == 2
    assert chat(server) == 200
    assert first.fake.records[-1].body["max_tokens"] == 7  # the console's default

    before = console_version(server, 2)
    services.update_gateway_setting(max_n=None, default_max_tokens=None)
    assert console_applied(server, 2, after=before)
    assert {chat(server, n=3) for _ in range(8)} == {200}
