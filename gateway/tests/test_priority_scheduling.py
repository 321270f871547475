"""Autocompletion first: the ``priority`` Kodify gives generations on upstreams marked
``priority_scheduling`` (gateway/scheduling.py), and never on the others.

The choice itself, then in process (``gateway.tests.in_process``) in front of two fake
vLLMs, one marked in config.yml and one not, reading the bodies they received.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import override_settings
from hypothesis import given
from hypothesis import strategies as st

from gateway import following, upstreams
from gateway.http_client import close_upstream_session
from gateway.scheduling import AUTOCOMPLETION_BASE, BAND, class_priority
from gateway.tests.fake_upstream import FakeUpstream, FakeUpstreamServer, Record
from gateway.tests.in_process import call, fresh_gateway

pytestmark = pytest.mark.smoke

SCHEDULED = "scheduled-qwen"  # served by the upstream marked priority_scheduling
PLAIN = "plain-qwen"  # served by the one that is not
MESSAGES = [{"role": "user", "content": "hi"}]


# -- the choice -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("autocompletion", "asked", "expected"),
    [
        (True, None, AUTOCOMPLETION_BASE),
        (False, None, 0),  # where vLLM puts requests that name no priority
        (False, 7, 7),  # a chat's own 0…999 reaches vLLM unchanged
        (False, -50, 0),  # never ahead of its peers
        (False, 10**12, BAND - 1),  # nor out of its class
        (True, 3, AUTOCOMPLETION_BASE + 3),
        (True, 10**12, -1),  # still ahead of every chat
        (True, -(2**63), AUTOCOMPLETION_BASE),
    ],
)
def test_a_generation_gets_its_classs_priority(
    autocompletion: bool, asked: int | None, expected: int
) -> None:
    assert class_priority(autocompletion=autocompletion, asked=asked) == expected


@given(st.none() | st.integers(-(2**63), 2**63 - 1), st.none() | st.integers(-(2**63), 2**63))
def test_every_autocompletion_goes_before_every_other_generation(
    completion_asked: int | None, chat_asked: int | None
) -> None:
    # vLLM schedules the lowest value first.
    assert class_priority(autocompletion=True, asked=completion_asked) < class_priority(
        autocompletion=False, asked=chat_asked
    )


# -- through the gateway --------------------------------------------------------------------


@pytest.fixture
def replicas() -> Iterator[tuple[FakeUpstreamServer, FakeUpstreamServer]]:
    scheduled = FakeUpstreamServer(FakeUpstream(models=(SCHEDULED,))).start()
    plain = FakeUpstreamServer(FakeUpstream(models=(PLAIN,))).start()
    yield scheduled, plain
    scheduled.stop()
    plain.stop()


@pytest.fixture
async def gateway(
    replicas: tuple[FakeUpstreamServer, FakeUpstreamServer],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[tuple[FakeUpstreamServer, FakeUpstreamServer]]:
    scheduled, plain = replicas
    config = tmp_path / "config.yml"
    config.write_text(
        "upstreams:\n"
        f"  {scheduled.url}:\n"
        "    priority_scheduling: true\n"
        "    preprocessing: qwen\n"
        f"  {plain.url}:\n"
        "    preprocessing: qwen\n"
    )
    monkeypatch.setattr(following, "_database", None)
    with override_settings(KODIFY_UPSTREAMS=[], KODIFY_CONFIG=config, LOGS=False):
        fresh_gateway()
        yield replicas
        await upstreams.get_table().close()
        await close_upstream_session()
    fresh_gateway()


def tabby(model: str) -> dict[str, Any]:
    return {
        "model": model,
        "language": "python",
        "segments": {"prefix": "def add(a, b):\n    return ", "suffix": "\n"},
    }


def fim(model: str, **fields: Any) -> dict[str, Any]:
    return {"model": model, "prompt": "def add(a, b):\n    return ", "suffix": "\n", **fields}


def request_id_of(record: Record) -> str:
    """The X-Request-Id an upstream request carried (aiohttp writes it X-Request-ID)."""
    return next((v for k, v in record.headers.items() if k.lower() == "x-request-id"), "")


def received(server: FakeUpstreamServer) -> dict[str, Any]:
    """The body of the last request the fake vLLM received."""
    return server.fake.records[-1].body


@pytest.mark.parametrize(
    ("path", "body", "priority"),
    [
        ("/v1/completions", tabby(SCHEDULED), AUTOCOMPLETION_BASE),
        ("/v1/completions", fim(SCHEDULED), AUTOCOMPLETION_BASE),
        ("/v1/completions", fim(SCHEDULED, priority=3), AUTOCOMPLETION_BASE + 3),
        ("/v1/completions", {"model": SCHEDULED, "prompt": "def add(", "priority": 2.0}, 2),
        ("/v1/chat/completions", {"model": SCHEDULED, "messages": MESSAGES}, 0),
        ("/v1/chat/completions", {"model": SCHEDULED, "messages": MESSAGES, "priority": 7}, 7),
        ("/v1/chat/completions", {"model": SCHEDULED, "messages": MESSAGES, "priority": -9}, 0),
        ("/v1/actions/explain", {"model": SCHEDULED, "code": "x = 1", "language": "python"}, 0),
    ],
)
async def test_an_upstream_with_priority_scheduling_gets_the_classs_priority(
    gateway: tuple[FakeUpstreamServer, FakeUpstreamServer],
    path: str,
    body: dict[str, Any],
    priority: int,
) -> None:
    scheduled, plain = gateway
    answer = await call("POST", path, body)
    assert answer.status == 200, answer.body
    sent = received(scheduled)
    assert sent["priority"] == priority and type(sent["priority"]) is int
    assert plain.fake.seen == 0


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/completions", tabby(PLAIN)),
        ("/v1/completions", fim(PLAIN, priority=3)),
        ("/v1/chat/completions", {"model": PLAIN, "messages": MESSAGES, "priority": 7}),
        ("/v1/chat/completions", {"model": PLAIN, "messages": MESSAGES}),
    ],
)
async def test_an_upstream_without_it_never_gets_a_priority(
    gateway: tuple[FakeUpstreamServer, FakeUpstreamServer], path: str, body: dict[str, Any]
) -> None:
    scheduled, plain = gateway
    answer = await call("POST", path, body)
    assert answer.status == 200, answer.body
    assert "priority" not in received(plain)  # the client's own taken out too
    assert scheduled.fake.seen == 0


async def test_the_tokenizer_is_left_alone(
    gateway: tuple[FakeUpstreamServer, FakeUpstreamServer],
) -> None:
    scheduled, _ = gateway
    answer = await call("POST", "/tokenize", {"model": SCHEDULED, "prompt": "def"})
    assert answer.status == 200, answer.body
    assert "priority" not in received(scheduled)  # nothing is generated: nothing to order


@pytest.mark.parametrize("priority", ["high", 1.5, True, [1], 1e30])
async def test_a_priority_that_is_not_a_whole_number_is_refused(
    gateway: tuple[FakeUpstreamServer, FakeUpstreamServer], priority: Any
) -> None:
    scheduled, plain = gateway
    for model in (SCHEDULED, PLAIN):  # whether or not the upstream would get it
        body = {"model": model, "messages": MESSAGES, "priority": priority}
        answer = await call("POST", "/v1/chat/completions", body)
        assert answer.status == 400, answer.body
        assert answer.error()["param"] == "priority"
    assert scheduled.fake.seen == plain.fake.seen == 0


# -- a retry on another replica ---------------------------------------------------------------


@pytest.fixture
async def one_model_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[FakeUpstreamServer, FakeUpstreamServer]]:
    """Two replicas of one model, only the first marked priority_scheduling, and broken."""
    scheduled = FakeUpstreamServer(FakeUpstream(models=(SCHEDULED,), status=500)).start()
    plain = FakeUpstreamServer(FakeUpstream(models=(SCHEDULED,))).start()
    config = tmp_path / "config.yml"
    config.write_text(
        f"upstreams:\n  {scheduled.url}:\n    priority_scheduling: true\n  {plain.url}:\n"
    )
    monkeypatch.setattr(following, "_database", None)
    with override_settings(KODIFY_UPSTREAMS=[], KODIFY_CONFIG=config, LOGS=False):
        fresh_gateway()
        yield scheduled, plain
        await upstreams.get_table().close()
        await close_upstream_session()
    fresh_gateway()
    scheduled.stop()
    plain.stop()


async def test_a_retry_on_a_replica_without_it_takes_the_priority_out(
    one_model_twice: tuple[FakeUpstreamServer, FakeUpstreamServer],
) -> None:
    scheduled, plain = one_model_twice
    body = {"model": SCHEDULED, "messages": MESSAGES, "priority": 7}
    ids = [uuid.uuid4().hex for _ in range(2)]
    for request_id in ids:  # the least busy pick takes turns: one of them tries both
        answer = await call("POST", "/v1/chat/completions", body, {"x-request-id": request_id})
        assert answer.status == 200, answer.body
    [tried] = [r for r in scheduled.fake.records if request_id_of(r) in ids]
    assert tried.body["priority"] == 7
    [retried] = [r for r in plain.fake.records if request_id_of(r) == request_id_of(tried)]
    assert "priority" not in retried.body
