"""Tabby-shape completions and events, end to end: a real Kodify over a fake vLLM."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from gateway.tests.fake_upstream import FakeUpstream, FakeUpstreamServer
from kodify_site.testing import KodifyServer

pytestmark = pytest.mark.smoke

KEY = "tabby-completion-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
QWEN_MODEL = "qwen2.5-coder-7b"
OTHER_MODEL = "deepseek-coder-6.7b-base"
# Tabby's shape (a uuid4), then the signature for the caller's token (completion_ids.py).
ID = re.compile(
    r"^cmpl-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}-[0-9a-f]{20}$"
)

# What the fake model says, by a marker found in the prompt Kodify built.
ANSWERS = {
    "def add(a, b):": "return a + b\n\ndef unrelated():\n    pass\n",
    "CRLF_MARKER": "first();\n    second();",
    "loop_forever": "x = 1\n" * 30,
}


def model_text(body: dict[str, Any]) -> str:
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        for marker, text in ANSWERS.items():
            if marker in prompt:
                return text
    return "pass"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeUpstream]:
    upstream = FakeUpstream(models=(QWEN_MODEL, OTHER_MODEL), completion_text=model_text)
    server = FakeUpstreamServer(upstream).start()
    upstream.url = server.url  # type: ignore[attr-defined]
    yield upstream
    server.stop()


@pytest.fixture(scope="module")
def server(module_kodify_server: Any, fake: FakeUpstream) -> KodifyServer:
    return module_kodify_server(
        {"KODIFY_UPSTREAMS": fake.url, "VLLM_API_KEY": KEY}  # type: ignore[attr-defined]
    )


@pytest.fixture
def client(server: KodifyServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30, headers=AUTH) as client:
        yield client


def complete(client: httpx.Client, prefix: str, suffix: str = "", **extra: Any) -> httpx.Response:
    body = {"language": "python", "segments": {"prefix": prefix, "suffix": suffix}, **extra}
    return client.post("/v1/completions", json=body)


def last_upstream_body(fake: FakeUpstream, marker: str) -> dict[str, Any]:
    found = [r.body for r in fake.records if marker in str(r.body.get("prompt"))]
    assert found, f"the upstream never saw {marker!r}"
    return found[-1]


def test_a_tabby_body_gets_a_fim_prompt_and_a_cleaned_tabby_answer(
    client: httpx.Client, fake: FakeUpstream
) -> None:
    prefix = "import math\n\n\ndef add(a, b):\n    "
    response = complete(client, prefix, "\n\nprint(add(1, 2))\n")
    assert response.status_code == 200, response.text
    answer = response.json()
    assert set(answer) == {"id", "choices"}
    assert ID.match(answer["id"])
    assert answer["choices"] == [{"index": 0, "text": "return a + b"}]
    sent = last_upstream_body(fake, "def add(a, b):")
    assert sent["model"] == QWEN_MODEL  # no tabby.model_name: the first model
    assert sent["prompt"] == (
        f"<|fim_prefix|>{prefix}<|fim_suffix|>\n\nprint(add(1, 2))\n<|fim_middle|>"
    )
    assert sent["max_tokens"] == 64 and sent["temperature"] == 0.1
    assert sent["stream"] is False
    assert sent["stop"] == ["\n\n", "\ndef ", "\nasync def ", "\nclass "]  # vLLM takes 4


def test_mid_line_cursor_asks_for_one_line(client: httpx.Client, fake: FakeUpstream) -> None:
    response = complete(client, "def add(a, b):\n    return add_numbers(", "a, b)\n")
    assert response.status_code == 200
    assert last_upstream_body(fake, "add_numbers(")["stop"][0] == "\n"


def test_client_temperature_seed_and_debug_data(client: httpx.Client, fake: FakeUpstream) -> None:
    response = complete(
        client,
        "def add(a, b):\n    ",
        temperature=0.7,
        seed=42,
        segments={
            "prefix": "def add(a, b):\n    ",
            "suffix": "",
            "filepath": "calc/ops.py",
            "declarations": [{"filepath": "calc/types.py", "body": "Number = int | float"}],
            "relevant_snippets_from_changed_files": [
                {"filepath": "calc/sub.py", "body": "def sub(a, b):\n    return a - b", "score": 1}
            ],
        },
        debug_options={"return_prompt": True, "return_snippets": True},
    )
    assert response.status_code == 200, response.text
    debug = response.json()["debug_data"]
    assert debug["prompt"].startswith(
        "<|fim_prefix|># Path: calc/sub.py\n# def sub(a, b):\n#     return a - b\n#\n"
        "# Path: calc/types.py\n# Number = int | float\n#\ndef add(a, b):\n    "
    )
    assert [s["filepath"] for s in debug["snippets"]] == ["calc/sub.py", "calc/types.py"]
    sent = last_upstream_body(fake, "calc/types.py")
    assert sent["prompt"] == debug["prompt"]
    assert sent["temperature"] == 0.7 and sent["seed"] == 42


def test_crlf_files_get_crlf_back(client: httpx.Client) -> None:
    response = complete(client, "void f() {\r\n    // CRLF_MARKER\r\n    ", "\r\n}\r\n")
    assert response.json()["choices"][0]["text"] == "first();\r\n    second();"


def test_a_looping_model_is_cut_to_one_line(client: httpx.Client) -> None:
    text = complete(client, "# loop_forever\n").json()["choices"][0]["text"]
    assert text.count("x = 1") == 1


def test_unknown_language_and_huge_prefix_still_complete(
    client: httpx.Client, fake: FakeUpstream
) -> None:
    prefix = "".join(f"line_{i} = {i}  # padding padding\n" for i in range(40000)) + "huge_end = "
    response = client.post(
        "/v1/completions", json={"language": "cobol-2030", "segments": {"prefix": prefix}}
    )
    assert response.status_code == 200, response.text
    sent = last_upstream_body(fake, "huge_end = ")
    assert len(sent["prompt"]) < 7000  # trimmed to the budget, not refused
    assert sent["prompt"].startswith("<|fim_prefix|>line_")


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"language": "python", "segments": {"suffix": "x"}}, 400, "segments.prefix"),
        ({"segments": {"prefix": 12}}, 400, "segments.prefix"),
        ({"segments": "def f():"}, 400, "segments"),
        ({"segments": {"prefix": "a", "suffix": ["b"]}}, 400, "segments.suffix"),
        ({"segments": {"prefix": "a", "declarations": {"x": 1}}}, 400, "segments.declarations"),
        (
            {"segments": {"prefix": "a", "declarations": [{"filepath": "a", "body": 1}]}},
            400,
            "segments.declarations",
        ),
        ({"segments": {"prefix": "a"}, "language": 3}, 400, "language"),
        ({"segments": {"prefix": "a"}, "temperature": "hot"}, 400, "temperature"),
        ({"segments": {"prefix": "a"}, "debug_options": {"return_prompt": "yes"}}, 400, None),
    ],
)
def test_bad_tabby_bodies_get_a_clear_4xx(
    client: httpx.Client, body: dict[str, Any], status: int, param: str | None
) -> None:
    response = client.post("/v1/completions", json=body)
    assert response.status_code == status
    error = response.json()["error"]
    assert error["message"] and error["type"] == "invalid_request_error"
    if param is not None:
        assert error["param"] == param


def test_tabby_requests_need_the_token(server: KodifyServer) -> None:
    response = httpx.post(server.url + "/v1/completions", json={"segments": {"prefix": "x"}})
    assert response.status_code == 401


def test_events_are_answered_at_once_with_an_empty_200(client: httpx.Client) -> None:
    completion = complete(client, "def add(a, b):\n    ").json()
    for kind in ("view", "select", "dismiss"):
        response = client.post(
            "/v1/events",
            params={"select_kind": "line"} if kind == "select" else None,
            json={
                "type": kind,
                "completion_id": completion["id"],
                "choice_index": 0,
                "view_id": "view-1",
                "elapsed": 1500,
            },
        )
        assert response.status_code == 200
        assert response.content == b""
    refused = client.post("/v1/events", json={"type": "launch", "completion_id": "cmpl-1"})
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "type"
    missing = client.post("/v1/events", json={"type": "view"})
    assert missing.status_code == 400 and missing.json()["error"]["param"] == "completion_id"
    made_up = client.post("/v1/events", json={"type": "view", "completion_id": "cmpl-1"})
    assert made_up.status_code == 404
    assert made_up.json()["error"]["code"] == "completion_not_found"


def test_openai_prompt_and_suffix_become_the_models_fim_prompt(
    client: httpx.Client, fake: FakeUpstream
) -> None:
    response = client.post(
        "/v1/completions",
        json={
            "model": QWEN_MODEL,
            "prompt": "def mul(a, b):\n    ",
            "suffix": "\n\nprint(mul(2, 3))\n",
            "stop": ["\n\n\n"],
            "max_tokens": 16,
        },
    )
    assert response.status_code == 200, response.text
    assert response.json()["object"] == "text_completion"  # still OpenAI's shape
    sent = last_upstream_body(fake, "def mul(a, b):")
    assert sent["prompt"] == (
        "<|fim_prefix|>def mul(a, b):\n    <|fim_suffix|>\n\nprint(mul(2, 3))\n<|fim_middle|>"
    )
    assert "suffix" not in sent
    assert sent["stop"] == ["\n\n\n", "<|endoftext|>", "<|fim_prefix|>", "<|fim_suffix|>"]
    assert sent["max_tokens"] == 16


def test_openai_without_suffix_is_forwarded_untouched(
    client: httpx.Client, fake: FakeUpstream
) -> None:
    client.post("/v1/completions", json={"model": QWEN_MODEL, "prompt": "# untouched\n"})
    sent = last_upstream_body(fake, "# untouched")
    assert sent["prompt"] == "# untouched\n" and "stop" not in sent


def test_tabby_chat_path_is_openai_chat(client: httpx.Client) -> None:
    response = client.post(
        "/v1beta/chat/completions",
        json={"model": QWEN_MODEL, "messages": [{"role": "user", "content": "hi"}]},
    )
    assert response.status_code == 200
    assert response.json()["object"] == "chat.completion"


def test_tabby_model_name_and_per_upstream_config(
    kodify_server: Any, fake: FakeUpstream, tmp_path: Path
) -> None:
    config = tmp_path / "config.yml"
    config.write_text(
        f"upstreams:\n  {fake.url}:\n    preprocessing: codellama\n"  # type: ignore[attr-defined]
        f"tabby:\n  model_name: {OTHER_MODEL}\n"
    )
    server = kodify_server({"KODIFY_CONFIG": str(config), "VLLM_API_KEY": KEY})
    with httpx.Client(base_url=server.url, timeout=30, headers=AUTH) as client:
        assert complete(client, "def add(a, b):\n    # model_name\n").status_code == 200
    sent = last_upstream_body(fake, "# model_name")
    assert sent["model"] == OTHER_MODEL
    assert sent["prompt"].startswith("<PRE> def add(a, b):")  # the upstream's own config


def test_a_client_that_leaves_cancels_the_upstream(kodify_server: Any) -> None:
    slow = FakeUpstream(models=(QWEN_MODEL,), completion_text=model_text, delay=30.0)
    upstream = FakeUpstreamServer(slow).start()
    try:
        server = kodify_server({"KODIFY_UPSTREAMS": upstream.url, "VLLM_API_KEY": KEY})
        body = orjson.dumps({"language": "python", "segments": {"prefix": "def slow():\n    "}})
        host, port = server.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as editor:
            editor.sendall(
                b"POST /v1/completions HTTP/1.1\r\nHost: kodify\r\n"
                + f"Authorization: Bearer {KEY}\r\nContent-Type: application/json\r\n".encode()
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            assert slow.wait_for(lambda f: len(f.records) == 1)  # generating now
        # The editor moved on (socket closed): the generation must stop at once.
        assert slow.wait_for(lambda f: f.count("disconnected") == 1)
        assert slow.count("completed") == 0
    finally:
        upstream.stop()
