"""Console changes reach every worker of a running server within seconds, with no restart.

The test writes the database and the cache as the console does (through the services),
and watches where two uvicorn workers send their requests.  Needs the shared PostgreSQL
and Redis of the full run: the server must see this process's writes and stamps.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from gateway import services
from gateway.models import UpstreamServer
from gateway.tests.fake_upstream import FakeUpstream, FakeUpstreamServer
from kodify_site.testing import KodifyServer

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


def until(predicate: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)  # polling a condition with a deadline
    return False


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
    client = httpx.Client(base_url=server.url, timeout=30)

    def second_gets_requests() -> bool:
        before = second.fake.seen
        for _ in range(8):  # new connections: both workers take some
            assert httpx.post(server.url + "/v1/chat/completions", json=BODY).status_code == 200
        return second.fake.seen > before

    assert client.post("/v1/chat/completions", json=BODY).status_code == 200
    assert second.fake.seen == 0
    services.save_upstream(upstream=UpstreamServer(url=second.url, name="added"))
    assert until(second_gets_requests)
    assert any(
        u["url"] == second.url and u["healthy"] for u in client.get("/health").json()["upstreams"]
    )

    def quiet_for(seconds: float) -> bool:
        # One quiet batch may all have gone to the worker that already reloaded.
        start = time.monotonic()
        while time.monotonic() - start < seconds:
            if second_gets_requests():
                return False
        return True

    upstream = UpstreamServer.objects.get(url=second.url)
    services.set_upstreams_enabled(upstreams=[upstream], enabled=False)
    assert until(lambda: quiet_for(1.5))
    first_before = first.fake.seen
    for _ in range(8):
        assert httpx.post(server.url + "/v1/chat/completions", json=BODY).status_code == 200
    assert first.fake.seen == first_before + 8 and not second_gets_requests()


def test_console_settings_apply_on_every_worker(
    kodify_server: Any, fakes: tuple[FakeUpstreamServer, FakeUpstreamServer]
) -> None:
    first, _ = fakes
    server: KodifyServer = kodify_server(
        {"KODIFY_UPSTREAMS": first.url, "KODIFY_CONFIG_POLL_INTERVAL": "0.2", "MAX_N": "4"},
        workers=2,
    )

    def refused_everywhere(n: int) -> bool:
        statuses = {
            httpx.post(server.url + "/v1/chat/completions", json={**BODY, "n": n}).status_code
            for _ in range(8)
        }
        return statuses == {400}

    assert not refused_everywhere(3)
    services.update_gateway_setting(max_n=2, default_max_tokens=7)
    assert until(lambda: refused_everywhere(3))

    def documented_n() -> int:
        document = httpx.get(server.url + "/v1/openapi.json").json()
        return int(
            document["components"]["schemas"]["ChatCompletionRequest"]["properties"]["n"]["maximum"]
        )

    assert until(lambda: documented_n() == 2)  # the API description follows the console
    response = httpx.post(server.url + "/v1/chat/completions", json=BODY)
    assert response.status_code == 200
    assert first.fake.records[-1].body["max_tokens"] == 7  # the console's default
    services.update_gateway_setting(max_n=None, default_max_tokens=None)
    assert until(lambda: not refused_everywhere(3))
