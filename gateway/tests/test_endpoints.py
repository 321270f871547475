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
from gateway import following, health, upstreams
from gateway.config_file import UpstreamSpec
from gateway.http_client import close_upstream_session
from gateway.tests.fake_upstream import DEFAULT_MODEL, FakeUpstream, FakeUpstreamServer
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
    cards = answer.json()["data"]
    assert [card["id"] for card in cards if "kodify_action" not in card] == [DEFAULT_MODEL]


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


@pytest.fixture
async def no_upstream(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[None]:
    """This process's gateway with no upstream at all (none configured, no database)."""
    monkeypatch.setattr(following, "_database", None)
    with override_settings(KODIFY_UPSTREAMS=[], KODIFY_CONFIG=None, LOGS=False):
        fresh_gateway()
        yield
        await upstreams.get_table().close()
        await close_upstream_session()
    fresh_gateway()


async def test_health_says_plainly_that_there_is_no_upstream(no_upstream: None) -> None:
    answer = await call("GET", "/health", client=("203.0.113.9", 40000))
    report = answer.json()
    # Still 200: the server is up (probes and the image's health check read the status
    # code); the body tells an operator why every API request fails.
    assert answer.status == 200
    assert report["status"] == "no_upstreams"
    assert "No upstream" in report["detail"] and "console" in report["detail"]
    assert (report["upstreams_total"], report["upstreams"]) == (0, [])
    chat = await call("POST", "/v1/chat/completions", CHAT)
    assert chat.status == 503


def test_health_counts_only_enabled_upstreams_as_serving() -> None:
    def table(*enabled: bool) -> upstreams.UpstreamTable:
        specs = [
            UpstreamSpec(url=f"http://10.0.0.{i}:8000", enabled=on)
            for i, on in enumerate(enabled, 1)
        ]
        return upstreams.UpstreamTable(specs, default_api_key=None)

    assert health.report(table(), operator=True)["status"] == "no_upstreams"
    assert health.report(table(False), operator=True)["status"] == "no_upstreams"
    serving = health.report(table(False, True), operator=False)
    assert serving["status"] == "ok" and "detail" not in serving


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


# -- request ids ---------------------------------------------------------------------


def upstream_headers(fake: FakeUpstream, index: int = -1) -> dict[str, str]:
    return {name.lower(): value for name, value in fake.records[index].headers.items()}


async def test_a_clients_request_id_is_echoed_and_sent_upstream(
    closing: FakeUpstreamServer,
) -> None:
    sent = "0f8fad5b-d9cb-469f-a165-70867728950e:retry.2_a"
    answer = await call("POST", "/v1/chat/completions", CHAT, {"x-request-id": sent})
    assert answer.status == 200
    assert answer.headers["x-request-id"] == sent
    assert upstream_headers(closing.fake)["x-request-id"] == sent


@pytest.mark.parametrize(
    "sent",
    ["", "with space", "x" * 129, "slash/in/it", 'quote"d', "ünïcode", "semi;colon"],
)
async def test_a_malformed_request_id_is_replaced_and_the_new_one_sent_upstream(
    closing: FakeUpstreamServer, sent: str
) -> None:
    answer = await call("POST", "/v1/chat/completions", CHAT, {"x-request-id": sent})
    assert answer.status == 200
    made = answer.headers["x-request-id"]
    assert made != sent and len(made) == 16 and int(made, 16) >= 0
    assert upstream_headers(closing.fake)["x-request-id"] == made


async def test_without_a_request_id_kodifys_own_goes_upstream_and_errors_carry_one(
    closing: FakeUpstreamServer,
) -> None:
    body = {"language": "python", "segments": {"prefix": "def f(x):\n    ", "suffix": ""}}
    answer = await call("POST", "/v1/completions", body)  # Tabby's, reworked on the way
    assert answer.status == 200
    assert upstream_headers(closing.fake)["x-request-id"] == answer.headers["x-request-id"]
    refused = await call("POST", "/v1/chat/completions", b"{", {"x-request-id": "bad-json-1"})
    assert (refused.status, refused.headers["x-request-id"]) == (400, "bad-json-1")


async def test_a_retry_on_another_replica_sends_the_same_request_id(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broken = FakeUpstreamServer(FakeUpstream(status=500)).start()
    working = FakeUpstreamServer(FakeUpstream()).start()
    monkeypatch.setattr(following, "_database", None)
    try:
        with override_settings(
            KODIFY_UPSTREAMS=[broken.url, working.url], KODIFY_CONFIG=None, LOGS=False
        ):
            fresh_gateway()
            # Ties between the replicas take turns: within two requests one meets the
            # broken replica first, and is retried on the other.
            for turn in range(2):
                sent = f"retried-{turn}"
                answer = await call("POST", "/v1/chat/completions", CHAT, {"x-request-id": sent})
                assert (answer.status, answer.headers["x-request-id"]) == (200, sent)
                if broken.fake.records:
                    break
            await upstreams.get_table().close()
            await close_upstream_session()
    finally:
        fresh_gateway()
        broken.stop()
        working.stop()
    assert len(broken.fake.records) == 1
    retried = upstream_headers(broken.fake)["x-request-id"]
    assert retried.startswith("retried-")
    assert upstream_headers(working.fake)["x-request-id"] == retried


# -- OpenAI's suffix for a model without a fill-in-the-middle template ---------------------


async def test_suffix_for_a_model_without_a_fim_template_gets_kodifys_400(
    closing: FakeUpstreamServer,
) -> None:
    seen = closing.fake.seen
    body = {"model": DEFAULT_MODEL, "prompt": "def f(", "suffix": ")", "max_tokens": 4}
    answer = await call("POST", "/v1/completions", body)
    assert answer.status == 400
    error = answer.error()
    assert (error["param"], error["code"]) == ("suffix", "suffix_not_supported")
    assert f"'{DEFAULT_MODEL}'" in error["message"]
    assert "Models > fake-model > Preprocessing" in error["message"]
    assert "'preprocessing' in config.yml" in error["message"]
    assert closing.fake.seen == seen  # nothing was forwarded
    assert (await call("POST", "/v1/completions", {**body, "suffix": None})).status == 200


async def test_suffix_works_once_the_model_is_given_a_fim_template(
    closing: FakeUpstreamServer,
) -> None:
    upstreams.get_table().model_preprocessing[DEFAULT_MODEL] = "qwen"  # the console's choice
    body = {"model": DEFAULT_MODEL, "prompt": "def f(", "suffix": ")", "max_tokens": 4}
    answer = await call("POST", "/v1/completions", body)
    assert answer.status == 200
    sent = closing.fake.records[-1].body
    assert sent["prompt"] == "<|fim_prefix|>def f(<|fim_suffix|>)<|fim_middle|>"
    assert "suffix" not in sent


# -- vLLM's tokenizer, and the API's other paths ----------------------------------------


@pytest.mark.parametrize("prefix", ["", "/v1"])
async def test_tokenize_and_detokenize_go_to_the_models_upstream(
    closing: FakeUpstreamServer, prefix: str
) -> None:
    answer = await call(
        "POST",
        f"{prefix}/tokenize",
        {"model": DEFAULT_MODEL, "prompt": "hi"},
        {"x-request-id": "t-1"},
    )
    assert answer.status == 200, answer.body
    assert answer.json() == {
        "count": 2,
        "max_model_len": 4096,
        "tokens": [104, 105],
        "token_strs": None,
    }
    assert answer.headers["x-request-id"] == "t-1"
    record = closing.fake.records[-1]
    assert (record.path, record.body["model"]) == ("/tokenize", DEFAULT_MODEL)
    assert upstream_headers(closing.fake)["x-request-id"] == "t-1"

    chat = await call("POST", f"{prefix}/tokenize/", {"messages": CHAT["messages"]})
    assert chat.status == 200 and chat.json()["count"] > 2
    assert closing.fake.records[-1].body["model"] == DEFAULT_MODEL  # the default model

    text = await call(
        "POST", f"{prefix}/detokenize", {"model": DEFAULT_MODEL, "tokens": [104, 105]}
    )
    assert (text.status, text.json()) == (200, {"prompt": "hi"})
    assert closing.fake.records[-1].path == "/detokenize"


@pytest.mark.parametrize(
    ("path", "body", "status", "code", "param"),
    [
        ("/tokenize", {"model": DEFAULT_MODEL}, 400, "missing_required_parameter", "prompt"),
        ("/tokenize", {"prompt": 5}, 400, "invalid_type", "prompt"),
        ("/tokenize", {"messages": "hi"}, 400, "invalid_type", "messages"),
        ("/tokenize", {"model": "no-such-model", "prompt": "x"}, 404, "model_not_found", "model"),
        ("/detokenize", {}, 400, "missing_required_parameter", "tokens"),
        ("/detokenize", {"tokens": [1, -1]}, 400, "invalid_value", "tokens"),
        ("/v1/detokenize", {"tokens": "1 2"}, 400, "invalid_value", "tokens"),
    ],
)
async def test_bad_tokenizer_requests_get_an_openai_error(
    closing: FakeUpstreamServer, path: str, body: Any, status: int, code: str, param: str
) -> None:
    seen = closing.fake.seen
    answer = await call("POST", path, body)
    assert answer.status == status
    assert (answer.error()["code"], answer.error()["param"]) == (code, param)
    assert closing.fake.seen == seen


async def test_the_consoles_default_max_tokens_is_for_generations_only(
    closing: FakeUpstreamServer,
) -> None:
    upstreams.get_table().default_max_tokens = 32
    assert (await call("POST", "/tokenize", {"prompt": "x"})).status == 200
    assert "max_tokens" not in closing.fake.records[-1].body
    assert (await call("POST", "/v1/completions", {"prompt": "x"})).status == 200
    assert closing.fake.records[-1].body["max_tokens"] == 32


async def test_the_tokenizer_wants_the_token_and_a_post(gateway: FakeUpstreamServer) -> None:
    with override_settings(VLLM_API_KEY=KEY):
        auth.get_authenticator.cache_clear()
        refused = await call("POST", "/tokenize", {"prompt": "x"})
    auth.get_authenticator.cache_clear()
    assert (refused.status, refused.error()["code"]) == (401, "missing_api_key")
    wrong = await call("GET", "/v1/tokenize")
    assert (wrong.status, wrong.headers["allow"]) == (405, "POST")


@pytest.mark.parametrize(
    "path", ["/v1", "/v1/nothing-here", "/v1beta/nothing", "/tokenize/x", "/detokenize/a/b"]
)
async def test_unknown_paths_under_the_api_prefixes_get_a_json_404(
    gateway: FakeUpstreamServer, path: str
) -> None:
    for method in ("GET", "POST"):
        answer = await call(method, path, {} if method == "POST" else None)
        assert answer.headers["content-type"] == "application/json"
        assert (answer.status, answer.error()["code"]) == (404, "unknown_url")
        assert path in answer.error()["message"]


# -- Tabby's health: the device ------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "device"),
    [
        ("0.32.0+cpu", "cpu"),
        ("0.9.2.dev3+g1a2b3c.cpu", "cpu"),
        ("0.8.5+cu126", "cuda"),
        ("0.9.1+rocm624", "rocm"),
        ("0.32.0", "unknown"),  # CUDA's main build, or a CPU build repackaged: not told
    ],
)
async def test_tabby_health_reports_the_device_the_upstream_tells(
    monkeypatch: pytest.MonkeyPatch, version: str, device: str
) -> None:
    upstream = FakeUpstreamServer(FakeUpstream(version=version)).start()
    monkeypatch.setattr(following, "_database", None)
    try:
        with override_settings(KODIFY_UPSTREAMS=[upstream.url], KODIFY_CONFIG=None, LOGS=False):
            fresh_gateway()
            first = await call("GET", "/v1/health")
            upstream.fake.version = "0.32.0+tpu"  # asked once: the answer is kept
            second = await call("GET", "/v1/health")
            await upstreams.get_table().close()
            await close_upstream_session()
    finally:
        fresh_gateway()
        upstream.stop()
    assert first.status == 200
    assert first.json()["device"] == second.json()["device"] == device
