"""A replica that answers one request with a 5xx rests only when another replica took
that same request: a request every replica fails on is the likelier culprit, and one
client's odd request must not take the model away from everyone else.

In process, in front of two fake vLLMs (``gateway.tests.in_process``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from django.test import override_settings

from gateway import following, upstreams
from gateway.http_client import close_upstream_session
from gateway.tests.fake_upstream import DEFAULT_MODEL, FakeUpstream, FakeUpstreamServer
from gateway.tests.in_process import call, fresh_gateway

pytestmark = pytest.mark.smoke

CHAT = {"model": DEFAULT_MODEL, "messages": [{"role": "user", "content": "hi"}]}
# The fakes answer this one with a 500, as an upstream might answer a request it chokes on.
POISON = {**CHAT, "fake": {"status": 500}}


@pytest.fixture
def replicas() -> Iterator[tuple[FakeUpstreamServer, FakeUpstreamServer]]:
    first = FakeUpstreamServer(FakeUpstream()).start()
    second = FakeUpstreamServer(FakeUpstream()).start()
    yield first, second
    first.stop()
    second.stop()


@pytest.fixture
async def gateway(
    replicas: tuple[FakeUpstreamServer, FakeUpstreamServer], monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[FakeUpstreamServer, FakeUpstreamServer]]:
    monkeypatch.setattr(following, "_database", None)
    with override_settings(
        KODIFY_UPSTREAMS=[server.url for server in replicas], KODIFY_CONFIG=None, LOGS=False
    ):
        fresh_gateway()
        yield replicas
        await upstreams.get_table().close()
        await close_upstream_session()
    fresh_gateway()


def resting() -> list[str]:
    return [u.url for u in upstreams.get_table().upstreams if u.healthy is False]


async def test_a_request_every_replica_fails_on_rests_none(
    gateway: tuple[FakeUpstreamServer, FakeUpstreamServer],
) -> None:
    for _ in range(3):
        answer = await call("POST", "/v1/chat/completions", POISON)
        assert answer.status == 500
        assert answer.error()["message"] == "fake failure"
    assert sum(server.fake.seen for server in gateway) == 6  # each tried both replicas
    assert resting() == []
    assert (await call("POST", "/v1/chat/completions", CHAT)).status == 200


async def test_a_replica_failing_what_another_answers_rests(
    gateway: tuple[FakeUpstreamServer, FakeUpstreamServer],
) -> None:
    broken, sound = gateway
    broken.fake.status = 500
    for _ in range(4):  # the least busy pick takes turns: the broken one is tried
        answer = await call("POST", "/v1/chat/completions", CHAT)
        assert answer.status == 200
    assert broken.fake.seen >= 1
    assert sound.fake.completed == 4
    assert resting() == [broken.url]


async def test_the_client_never_reads_where_the_upstreams_are(
    gateway: tuple[FakeUpstreamServer, FakeUpstreamServer],
) -> None:
    for server in gateway:
        server.stop()
    answer = await call("POST", "/v1/chat/completions", CHAT)
    assert answer.status in (502, 503)
    for server in gateway:
        host_port = server.url.split("://", 1)[1]
        assert host_port not in answer.body.decode()
