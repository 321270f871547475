"""Each public endpoint's rules, in process: the gateway's ASGI routes called directly.

No server subprocess: the routes of ``gateway.routing`` run on the test's event loop in
front of the fake vLLM, so each rule costs milliseconds.  What needs a real server
(client disconnects, several workers, uvicorn's flags) stays in the server tests.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from django.test import override_settings

from accounts import auth
from gateway import following, upstreams
from gateway.http_client import close_upstream_session
from gateway.tests.fake_upstream import DEFAULT_MODEL, FakeUpstreamServer
from gateway.tests.in_process import call, fresh_gateway

pytestmark = pytest.mark.smoke

CHAT = {"model": DEFAULT_MODEL, "messages": [{"role": "user", "content": "hi"}]}
KEY = "sk-one-token-for-everyone"


@pytest.fixture
def gateway(
    module_fake_upstream: FakeUpstreamServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FakeUpstreamServer]:
    """This process's gateway, in front of the fake vLLM, following no database."""
    monkeypatch.setattr(following, "_database", None)
    with override_settings(
        KODIFY_UPSTREAMS=[module_fake_upstream.url], KODIFY_CONFIG=None, LOGS=False
    ):
        fresh_gateway()
        yield module_fake_upstream
    fresh_gateway()


@pytest.fixture
async def closing(gateway: FakeUpstreamServer) -> AsyncIterator[FakeUpstreamServer]:
    """The gateway, and what it opened on this test's event loop closed after."""
    yield gateway
    await upstreams.get_table().close()
    await close_upstream_session()


async def test_a_chat_passes_through_with_a_request_id(closing: FakeUpstreamServer) -> None:
    answer = await call("POST", "/v1/chat/completions", CHAT)
    assert answer.status == 200
    assert len(answer.headers["x-request-id"]) == 16
    assert answer.json()["object"] == "chat.completion"
    assert closing.fake.records[-1].body["messages"] == CHAT["messages"]


async def test_a_stream_passes_through_as_events(closing: FakeUpstreamServer) -> None:
    answer = await call("POST", "/v1/chat/completions", {**CHAT, "stream": True})
    assert answer.status == 200
    assert answer.headers["content-type"].startswith("text/event-stream")
    assert answer.headers["cache-control"] == "no-cache"
    assert answer.body.endswith(b"data: [DONE]\n\n")


@pytest.mark.parametrize(
    ("body", "status", "code", "param"),
    [
        (b"{not json", 400, "invalid_json", None),
        ({"model": DEFAULT_MODEL}, 400, "missing_required_parameter", "messages"),
        ({**CHAT, "n": 99}, 400, None, "n"),
        ({**CHAT, "model": "no-such-model"}, 404, "model_not_found", "model"),
    ],
)
async def test_bad_chat_requests_get_an_openai_error(
    closing: FakeUpstreamServer, body: Any, status: int, code: str | None, param: str | None
) -> None:
    seen = closing.fake.seen
    answer = await call("POST", "/v1/chat/completions", body)
    assert answer.status == status
    error = answer.error()
    assert error["param"] == param
    if code is not None:
        assert error["code"] == code
    assert closing.fake.seen == seen  # nothing reached the upstream


async def test_a_body_over_the_limit_is_refused_while_read(closing: FakeUpstreamServer) -> None:
    with override_settings(KODIFY_MAX_BODY_BYTES=1024):
        answer = await call("POST", "/v1/chat/completions", b"x" * 4096)
    assert (answer.status, answer.error()["code"]) == (413, "request_too_large")


async def test_a_wrong_method_names_the_right_ones(gateway: FakeUpstreamServer) -> None:
    answer = await call("GET", "/v1/chat/completions")
    assert (answer.status, answer.error()["code"]) == (405, "method_not_allowed")
    assert answer.headers["allow"] == "POST"


async def test_a_tabby_completion_is_answered_in_tabbys_shape(
    closing: FakeUpstreamServer,
) -> None:
    body = {"language": "python", "segments": {"prefix": "def add(a, b):\n    ", "suffix": ""}}
    answer = await call("POST", "/v1/completions", body)
    assert answer.status == 200
    data = answer.json()
    assert data["id"].startswith("cmpl-") and [c["index"] for c in data["choices"]] == [0]
    assert "def add(a, b):" in closing.fake.records[-1].body["prompt"]  # a prompt built here


async def test_models_list_what_the_upstreams_serve(closing: FakeUpstreamServer) -> None:
    answer = await call("GET", "/v1/models")
    assert answer.status == 200
    assert [card["id"] for card in answer.json()["data"]] == [DEFAULT_MODEL]


async def test_health_says_which_worker_and_what_it_sees(closing: FakeUpstreamServer) -> None:
    await call("GET", "/v1/models")  # the first reading of the upstreams
    answer = await call("GET", "/health", client=("127.0.0.1", 40000))
    report = answer.json()
    assert answer.status == 200
    assert (report["status"], report["auth_mode"]) == ("ok", "dummy")
    assert isinstance(report["worker"], int) and report["console_version"] == ""
    assert [u["url"] for u in report["upstreams"]] == [closing.url]


async def test_health_tells_only_operators_where_the_upstreams_are(
    closing: FakeUpstreamServer,
) -> None:
    await call("GET", "/v1/models")
    with override_settings(KODIFY_METRICS_TOKEN="metrics-secret"):
        remote = await call("GET", "/health", client=("203.0.113.9", 40000))
        relayed = await call(
            "GET", "/health", {}, {"x-forwarded-for": "203.0.113.9"}, client=("127.0.0.1", 1)
        )
        with_token = await call(
            "GET",
            "/health",
            headers={"authorization": "Bearer metrics-secret"},
            client=("203.0.113.9", 40000),
        )
    for answer in (remote, relayed):
        [upstream] = answer.json()["upstreams"]
        assert upstream["healthy"] is True and "url" not in upstream and "error" not in upstream
        assert closing.url.split("//")[1] not in answer.body.decode()
    assert [u["url"] for u in with_token.json()["upstreams"]] == [closing.url]


async def test_the_api_document_is_openapi_3_1(gateway: FakeUpstreamServer) -> None:
    answer = await call("GET", "/v1/openapi.json")
    assert answer.status == 200 and answer.json()["openapi"].startswith("3.1")


async def test_unknown_api_paths_get_a_json_404(gateway: FakeUpstreamServer) -> None:
    answer = await call("POST", "/v1/nothing-here", {})
    assert (answer.status, answer.error()["code"]) == (404, "unknown_url")


async def test_events_are_taken_at_once(gateway: FakeUpstreamServer) -> None:
    event = {"type": "view", "completion_id": "cmpl-1", "choice_index": 0}
    answer = await call("POST", "/v1/events", event)
    assert (answer.status, answer.body) == (200, b"")


async def test_one_token_mode_wants_the_token(gateway: FakeUpstreamServer) -> None:
    with override_settings(VLLM_API_KEY=KEY):
        auth.get_authenticator.cache_clear()
        refused = await call("POST", "/v1/chat/completions", CHAT)
        wrong = await call(
            "POST", "/v1/chat/completions", CHAT, {"authorization": "Bearer sk-wrong"}
        )
        models = await call("GET", "/v1/models", headers={"authorization": f"Bearer {KEY}"})
        health = await call("GET", "/health")
    auth.get_authenticator.cache_clear()
    await upstreams.get_table().close()
    await close_upstream_session()
    assert (refused.status, refused.error()["code"]) == (401, "missing_api_key")
    assert refused.headers["www-authenticate"] == 'Bearer realm="kodify"'
    assert (wrong.status, wrong.error()["code"]) == (401, "invalid_api_key")
    assert models.status == 200
    assert health.status == 200  # no token needed
