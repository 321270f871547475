"""The streaming proxy, end to end: a real Kodify (uvicorn) in front of the fake upstream."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from gateway.tests.fake_upstream import FakeUpstream, FakeUpstreamServer
from kodify_site.testing import KodifyServer

pytestmark = pytest.mark.smoke

CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"


def chat_body(**extra: Any) -> dict[str, Any]:
    return {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}], **extra}


def sse_events(text: str) -> list[str]:
    return [line[len("data: ") :] for line in text.splitlines() if line.startswith("data: ")]


@pytest.fixture(scope="module")
def server(module_kodify_server: Any, module_fake_upstream: FakeUpstreamServer) -> KodifyServer:
    return module_kodify_server(
        {
            "KODIFY_UPSTREAMS": module_fake_upstream.url,
            "MAX_N": "3",
            "KODIFY_MAX_BODY_BYTES": "4096",
        }
    )


@pytest.fixture
def client(server: KodifyServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


@pytest.fixture
def fake(module_fake_upstream: FakeUpstreamServer) -> FakeUpstream:
    return module_fake_upstream.fake


def tagged(**extra: Any) -> tuple[str, dict[str, Any]]:
    """A body the fake's records can be searched for."""
    tag = uuid.uuid4().hex
    return tag, chat_body(user=tag, **extra)


def record_of(fake: FakeUpstream, tag: str) -> Any:
    matches = [r for r in fake.records if r.body.get("user") == tag]
    assert len(matches) == 1, f"expected one upstream request tagged {tag}"
    return matches[0]


# -- passing answers through ------------------------------------------------------------


def test_non_stream_chat_passes_the_upstream_json_through(
    client: httpx.Client, fake: FakeUpstream
) -> None:
    tag, body = tagged()
    response = client.post(CHAT, json=body)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["x-request-id"]
    data = response.json()
    assert data["object"] == "chat.completion"
    assert data["choices"][0]["message"]["content"].startswith("tok0 tok1")
    assert data["usage"]["completion_tokens"] == 16
    # the body reached the upstream as sent, unknown fields included
    assert record_of(fake, tag).body == body


def test_completions_pass_through(client: httpx.Client) -> None:
    response = client.post(COMPLETIONS, json={"model": "fake-model", "prompt": "def f("})
    assert response.status_code == 200
    assert response.json()["object"] == "text_completion"


def test_suffix_for_a_model_no_fim_config_matches_is_refused_before_the_upstream(
    client: httpx.Client, fake: FakeUpstream
) -> None:
    tag = uuid.uuid4().hex
    body = {"model": "fake-model", "prompt": "def f(", "suffix": ")", "user": tag}
    error = assert_openai_error(client.post(COMPLETIONS, json=body), 400, "suffix_not_supported")
    assert error["param"] == "suffix" and "'fake-model'" in error["message"]
    assert not [r for r in fake.records if r.body.get("user") == tag]  # nothing forwarded


def test_stream_is_relayed_event_by_event_and_ends_with_done(client: httpx.Client) -> None:
    with client.stream("POST", CHAT, json=chat_body(stream=True, fake={"chunks": 5})) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        text = response.read().decode()
    events = sse_events(text)
    assert events[-1] == "[DONE]"
    contents = [orjson.loads(e)["choices"][0]["delta"]["content"] for e in events[:-1]]
    assert contents == [f"tok{i} " for i in range(5)]


def test_stream_chunks_reach_the_client_before_the_upstream_has_finished(
    client: httpx.Client, fake: FakeUpstream
) -> None:
    # The upstream needs 0.5 s per chunk; the first event must arrive while the upstream
    # is still generating, which proves Kodify does not buffer the stream.
    tag, body = tagged(stream=True, fake={"chunks": 4, "delay": 0.5})
    with client.stream("POST", CHAT, json=body) as response:
        lines = response.iter_lines()
        assert next(lines).startswith("data: {")
        assert record_of(fake, tag).outcome == "running"
        rest = "".join(lines)
    assert rest.endswith("data: [DONE]")
    assert fake.wait_for(lambda f: record_of(f, tag).outcome == "completed")


def test_missing_model_goes_to_the_default_model(client: httpx.Client, fake: FakeUpstream) -> None:
    tag, body = tagged()
    del body["model"]
    response = client.post(CHAT, json=body)
    assert response.status_code == 200
    assert record_of(fake, tag).body["model"] == "fake-model"


def test_models_lists_the_upstream_models(client: httpx.Client) -> None:
    response = client.get("/v1/models")
    assert response.status_code == 200
    data = response.json()
    assert data["object"] == "list"
    assert [m["id"] for m in data["data"] if "kodify_action" not in m] == ["fake-model"]
    assert data["data"][0]["max_model_len"] == 4096


def test_health_reports_each_upstream(client: httpx.Client, module_fake_upstream: Any) -> None:
    client.get("/v1/models")  # the table is read at least once
    data = client.get("/health").json()
    assert data["status"] == "ok"
    assert data["auth_mode"] == "dummy"
    [upstream] = data["upstreams"]
    assert upstream["url"] == module_fake_upstream.url
    assert upstream["healthy"] is True
    assert upstream["models"] == ["fake-model"]


# -- cancellation ---------------------------------------------------------------------


def test_client_leaving_a_stream_closes_the_upstream_request(
    client: httpx.Client, fake: FakeUpstream
) -> None:
    tag, body = tagged(stream=True, fake={"chunks": 200, "delay": 0.05})
    with client.stream("POST", CHAT, json=body) as response:
        assert next(response.iter_lines()).startswith("data: ")
    # leaving the block closed the client connection mid-stream
    assert fake.wait_for(lambda f: record_of(f, tag).outcome != "running")
    assert record_of(fake, tag).outcome == "disconnected"


def test_client_leaving_a_non_stream_request_closes_the_upstream_request(
    server: KodifyServer, fake: FakeUpstream
) -> None:
    tag, body = tagged(fake={"first_byte_delay": 60})
    payload = orjson.dumps(body)
    port = int(server.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(payload)}\r\n\r\n".encode()
            + payload
        )
        assert fake.wait_for(lambda f: any(r.body.get("user") == tag for r in f.records))
    assert fake.wait_for(lambda f: record_of(f, tag).outcome != "running")
    assert record_of(fake, tag).outcome == "disconnected"


# -- bad input ------------------------------------------------------------------------


def assert_openai_error(response: httpx.Response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    if code is not None:
        assert error["code"] == code
    return error


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (b"{not json", "invalid_json"),
        (b"", "invalid_json"),
        (b"[1, 2]", "invalid_json"),
        (b"[" * 100_000 + b"]" * 100_000, "invalid_json"),
        (b'{"messages": "hi"}', None),
        (b'{"model": "fake-model"}', "missing_required_parameter"),
        (b'{"messages": [{"content": "hi"}]}', None),
        (b'{"messages": [{"role": "user"}], "stream": "yes"}', "invalid_type"),
        (b'{"messages": [{"role": "user"}], "temperature": 7}', None),
        (b'{"messages": [{"role": "user"}], "max_tokens": -1}', None),
        (b'{"messages": [{"role": "user"}], "model": 5}', "invalid_type"),
    ],
)
def test_bad_chat_bodies_get_a_clear_400(
    client: httpx.Client, content: bytes, code: str | None
) -> None:
    response = client.post(CHAT, content=content, headers={"content-type": "application/json"})
    if len(content) > 4096:
        assert_openai_error(response, 413, "request_too_large")
    else:
        assert_openai_error(response, 400, code)


def test_deep_nesting_within_the_size_limit_is_refused_not_crashed(client: httpx.Client) -> None:
    content = b"[" * 2000 + b"]" * 2000
    assert_openai_error(client.post(CHAT, content=content), 400, "invalid_json")


def test_completions_need_a_prompt(client: httpx.Client) -> None:
    error = assert_openai_error(client.post(COMPLETIONS, json={"model": "fake-model"}), 400)
    assert error["param"] == "prompt"


def test_a_tabby_body_is_told_apart_from_an_openai_one(client: httpx.Client) -> None:
    body = {"language": "python", "segments": {"prefix": "def f(", "suffix": ")"}}
    tabby = client.post(COMPLETIONS, json=body)
    assert tabby.status_code == 200
    assert set(tabby.json()) == {"id", "choices"}  # Tabby's shape, not OpenAI's
    both = client.post(COMPLETIONS, json={**body, "prompt": "def f("})
    assert both.json()["object"] == "text_completion"  # a prompt makes it OpenAI's


def test_n_above_max_n_is_refused(client: httpx.Client) -> None:
    error = assert_openai_error(client.post(CHAT, json=chat_body(n=4)), 400, "n_too_large")
    assert "MAX_N" in error["message"]
    assert client.post(CHAT, json=chat_body(n=3)).status_code == 200


def test_body_over_the_limit_gets_413(client: httpx.Client) -> None:
    body = chat_body(messages=[{"role": "user", "content": "x" * 5000}])
    assert_openai_error(client.post(CHAT, json=body), 413, "request_too_large")


def test_unknown_model_gets_404(client: httpx.Client) -> None:
    error = assert_openai_error(
        client.post(CHAT, json=chat_body(model="no-such-model")), 404, "model_not_found"
    )
    assert "fake-model" in error["message"]  # the message lists what exists


def test_wrong_method_gets_405_with_allow(client: httpx.Client) -> None:
    response = client.get(CHAT)
    assert_openai_error(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "POST"


def test_unknown_api_path_gets_an_openai_404(client: httpx.Client) -> None:
    assert_openai_error(client.post("/v1/embeddings", json={}), 404, "unknown_url")
    assert_openai_error(client.get("/tokenize/more"), 404, "unknown_url")
    assert_openai_error(client.get("/v1beta/nothing"), 404, "unknown_url")


def test_other_paths_keep_djangos_html_404(client: httpx.Client) -> None:
    for path in ("/no-such-page", "/tokenizer", "/v1x", "/api-docs"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.headers["content-type"].startswith("text/html"), path


def test_the_tokenizer_is_served_through_the_gateway(
    client: httpx.Client, fake: FakeUpstream
) -> None:
    headers = {"X-Request-Id": "tokenize-trace-1"}
    tokens = client.post("/tokenize", json={"prompt": "ab"}, headers=headers)
    assert tokens.status_code == 200, tokens.text
    assert tokens.json()["tokens"] == [97, 98]
    assert tokens.headers["x-request-id"] == "tokenize-trace-1"
    text = client.post("/v1/detokenize", json={"model": "fake-model", "tokens": [97, 98]})
    assert text.json() == {"prompt": "ab"}
    assert [r.path for r in fake.records[-2:]] == ["/tokenize", "/detokenize"]


# -- upstream errors ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "shape"), [(500, "new"), (400, "old"), (503, "plain"), (422, "new")]
)
def test_upstream_errors_become_openai_errors_with_the_upstream_status(
    client: httpx.Client, status: int, shape: str
) -> None:
    body = chat_body(fake={"status": status, "error_shape": shape})
    error = assert_openai_error(client.post(CHAT, json=body), status)
    assert "fake failure" in error["message"]


def test_upstream_error_on_a_stream_request_is_an_openai_error(client: httpx.Client) -> None:
    body = chat_body(stream=True, fake={"status": 400, "error_shape": "old"})
    error = assert_openai_error(client.post(CHAT, json=body), 400)
    assert error["type"] == "BadRequestError"


# -- routing and upstream trouble (servers of their own) --------------------------------


def test_requests_are_routed_by_model(kodify_server: Any) -> None:
    alpha = FakeUpstreamServer(FakeUpstream(models=("alpha",))).start()
    beta = FakeUpstreamServer(FakeUpstream(models=("beta", "gamma"))).start()
    try:
        server = kodify_server({"KODIFY_UPSTREAMS": f"{alpha.url},{beta.url}"})
        with httpx.Client(base_url=server.url, timeout=30) as client:
            cards = client.get("/v1/models").json()["data"]
            assert [m["id"] for m in cards if "kodify_action" not in m] == [
                "alpha",
                "beta",
                "gamma",
            ]
            for model in ("alpha", "gamma", "beta", "alpha"):
                assert client.post(CHAT, json=chat_body(model=model)).status_code == 200
            # no model: the first upstream's first model
            body = chat_body()
            del body["model"]
            assert client.post(CHAT, json=body).json()["model"] == "alpha"
        assert [r.body["model"] for r in alpha.fake.records] == ["alpha", "alpha", "alpha"]
        assert [r.body["model"] for r in beta.fake.records] == ["gamma", "beta"]
    finally:
        alpha.stop()
        beta.stop()


def test_a_dead_replica_does_not_fail_requests(kodify_server: Any) -> None:
    alive = FakeUpstreamServer(FakeUpstream()).start()
    dead = FakeUpstreamServer(FakeUpstream()).start()
    try:
        server = kodify_server({"KODIFY_UPSTREAMS": f"{dead.url},{alive.url}"})
        with httpx.Client(base_url=server.url, timeout=30) as client:
            assert client.get("/v1/models").status_code == 200
            dead.stop()
            statuses = [client.post(CHAT, json=chat_body()).status_code for _ in range(10)]
            assert statuses == [200] * 10
            health = client.get("/health").json()
            states = {u["url"]: u["healthy"] for u in health["upstreams"]}
            assert states == {dead.url: False, alive.url: True}
    finally:
        alive.stop()


def test_upstream_down_gives_a_quick_503_and_health_says_so(kodify_server: Any) -> None:
    port = _closed_port()
    server = kodify_server({"KODIFY_UPSTREAMS": f"http://127.0.0.1:{port}"})
    with httpx.Client(base_url=server.url, timeout=30) as client:
        response = client.post(CHAT, json=chat_body())
        error = assert_openai_error(response, 503, "upstream_unavailable")
        assert str(port) not in error["message"]  # where upstreams are: the operator's business
        assert int(response.headers["retry-after"]) >= 1
        health = client.get("/health")
        assert health.status_code == 200
        [upstream] = health.json()["upstreams"]
        assert upstream["healthy"] is False
        assert upstream["error"]


def test_no_upstream_configured_gives_503(kodify_server: Any) -> None:
    server = kodify_server({})
    with httpx.Client(base_url=server.url, timeout=30) as client:
        assert_openai_error(client.post(CHAT, json=chat_body()), 503, "no_upstream")
        assert client.get("/health").json()["upstreams"] == []


def test_first_byte_timeout_gives_504(
    kodify_server: Any, fake_upstream: FakeUpstreamServer
) -> None:
    server = kodify_server(
        {"KODIFY_UPSTREAMS": fake_upstream.url, "KODIFY_UPSTREAM_FIRST_BYTE_TIMEOUT": "0.5"}
    )
    with httpx.Client(base_url=server.url, timeout=30) as client:
        body = chat_body(fake={"first_byte_delay": 30})
        error = assert_openai_error(client.post(CHAT, json=body), 504, "upstream_timeout")
        assert "KODIFY_UPSTREAM_FIRST_BYTE_TIMEOUT" in error["message"]
    # the timed-out upstream request was closed, not left generating
    assert fake_upstream.fake.wait_for(lambda f: f.count("disconnected") == 1)


def test_silence_mid_stream_ends_the_stream_with_an_error_event(
    kodify_server: Any, fake_upstream: FakeUpstreamServer
) -> None:
    server = kodify_server(
        {"KODIFY_UPSTREAMS": fake_upstream.url, "KODIFY_UPSTREAM_IDLE_TIMEOUT": "0.5"}
    )
    with httpx.Client(base_url=server.url, timeout=30) as client:
        body = chat_body(stream=True, fake={"chunks": 3, "delay": 5})
        response = client.post(CHAT, json=body)
    assert response.status_code == 200  # the headers had gone out already
    events = sse_events(response.text)
    error = orjson.loads(events[-1])["error"]
    assert error["code"] == "upstream_timeout"
    assert "[DONE]" not in events
    assert fake_upstream.fake.wait_for(lambda f: f.count("disconnected") == 1)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_several_uvicorn_workers_serve_the_same_api(
    kodify_server: Any, fake_upstream: FakeUpstreamServer
) -> None:
    server = kodify_server({"KODIFY_UPSTREAMS": fake_upstream.url}, workers=2)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for _ in range(10):
            assert client.post(CHAT, json=chat_body()).status_code == 200
            with client.stream("POST", CHAT, json=chat_body(stream=True)) as response:
                assert sse_events(response.read().decode())[-1] == "[DONE]"
    assert fake_upstream.fake.count("completed") == 20
