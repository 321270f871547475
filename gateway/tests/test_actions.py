"""Assistant actions end to end: ``POST /v1/actions/{action}`` and the action models, through
a real Kodify to the fake upstream, the messages it received checked exactly; the journal
records the action; bad input gets a clear 4xx."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from gateway.actions import ACTIONS
from gateway.actions.templates import build_messages
from gateway.tests.fake_upstream import FakeUpstream, FakeUpstreamServer
from kodify_site.testing import KodifyServer, journal_entry

LANGUAGES = {
    "python": "def add(a, b):\n    return a - b\n",
    "csharp": "public static int Add(int a, int b) { return a - b; }",
    "java": "static int add(int a, int b) { return a - b; }",
    "go": "func Add(a, b int) int {\n\treturn a - b\n}",
    "javascript": "function add(a, b) {\n  return a - b;\n}",
}


@pytest.fixture(scope="module")
def server(module_kodify_server: Any, module_fake_upstream: FakeUpstreamServer) -> KodifyServer:
    return module_kodify_server(
        {
            "KODIFY_UPSTREAMS": module_fake_upstream.url,
            "LOGS": "true",
            "KODIFY_JOURNAL_FLUSH_SECONDS": "0.05",
            "KODIFY_ACTION_MAX_CHARS": "5000",
        }
    )


@pytest.fixture
def client(server: KodifyServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


@pytest.fixture
def fake(module_fake_upstream: FakeUpstreamServer) -> FakeUpstream:
    return module_fake_upstream.fake


def sent_upstream(fake: FakeUpstream, marker: str) -> dict[str, Any]:
    """The one body the fake received whose messages hold ``marker``."""
    found = [r.body for r in fake.records if marker in str(r.body.get("messages"))]
    assert len(found) == 1, found
    return found[0]


@pytest.mark.parametrize("language", sorted(LANGUAGES))
@pytest.mark.parametrize("action", ACTIONS)
def test_each_action_sends_its_template_for_the_language(
    server: KodifyServer, client: httpx.Client, fake: FakeUpstream, action: str, language: str
) -> None:
    marker = uuid.uuid4().hex
    code = f"{LANGUAGES[language]}\n// {marker}\n"
    body = {
        "code": code,
        "language": language,
        "filepath": f"src/{marker}.txt",
        "instructions": "Keep it short.",
    }
    response = client.post(f"/v1/actions/{action}", json=body)
    assert response.status_code == 200, response.text + server.log()[-3000:]
    answer = response.json()
    assert answer["object"] == "chat.completion"
    assert answer["choices"][0]["message"]["content"].startswith("tok0")
    upstream = sent_upstream(fake, marker)
    assert upstream["model"] == "fake-model"  # the default model
    assert upstream["messages"] == build_messages(
        action,
        code=code,
        language=language,
        filepath=f"src/{marker}.txt",
        instructions="Keep it short.",
    )


@pytest.mark.smoke
def test_an_action_streams_and_is_journaled_with_the_action_as_feature(
    server: KodifyServer, client: httpx.Client
) -> None:
    body = {"code": "print(1)", "language": "python", "stream": True, "max_tokens": 64}
    response = client.post("/v1/actions/explain", json=body)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.text.rstrip().endswith("data: [DONE]")
    row = journal_entry(server, response.headers["x-request-id"])
    assert row is not None and row["feature"] == "explain"
    assert row["endpoint"] == "/v1/actions/explain"


def test_bad_action_input_gets_clear_4xx(client: httpx.Client) -> None:
    unknown = client.post("/v1/actions/poem", json={"code": "x", "language": "python"})
    assert unknown.status_code == 404
    assert "docs, fix, tests, explain" in unknown.json()["error"]["message"]
    empty = client.post("/v1/actions/fix", json={"code": "   ", "language": "python"})
    assert empty.status_code == 400 and empty.json()["error"]["param"] == "code"
    missing = client.post("/v1/actions/fix", json={"language": "python"})
    assert missing.status_code == 400 and "'code' is required" in missing.text
    huge = client.post("/v1/actions/fix", json={"code": "x" * 6000, "language": "python"})
    assert huge.status_code == 400 and huge.json()["error"]["code"] == "code_too_long"
    assert "KODIFY_ACTION_MAX_CHARS" in huge.json()["error"]["message"]
    odd = client.post("/v1/actions/tests", json={"code": "fn main() {}", "language": "rust"})
    assert odd.status_code == 200  # a language without its own template: the generic one
    not_json = client.post("/v1/actions/docs", content=b"{code")
    assert not_json.status_code == 400


# -- the action models, through the unmodified OpenAI SDK ---------------------------------


@pytest.fixture
def sdk(server: KodifyServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)


def test_the_models_list_has_one_model_per_action(sdk: openai.OpenAI) -> None:
    names = [model.id for model in sdk.models.list()]
    assert names[0] == "fake-model"
    assert {f"fake-model:{action}" for action in ACTIONS} <= set(names)


def test_a_chat_to_an_action_model_gets_the_template(
    server: KodifyServer, sdk: openai.OpenAI, fake: FakeUpstream
) -> None:
    marker = uuid.uuid4().hex
    code = f"def div(a, b):\n    return a / b  # {marker}\n"
    content = f"Please look at this:\n```python\n{code}```\n"
    completion = sdk.chat.completions.create(
        model="fake-model:fix", messages=[{"role": "user", "content": content}]
    )
    assert completion.choices[0].message.content
    upstream = sent_upstream(fake, marker)
    assert upstream["model"] == "fake-model"
    expected = build_messages(
        "fix", code=code, language="python", instructions="Please look at this:"
    )
    assert upstream["messages"][0] == expected[0]  # the fix template's system message
    assert code in upstream["messages"][-1]["content"]
    assert "Please look at this:" in upstream["messages"][-1]["content"]


def test_action_models_can_be_switched_off(
    module_kodify_server: Any, module_fake_upstream: FakeUpstreamServer
) -> None:
    server = module_kodify_server(
        {"KODIFY_UPSTREAMS": module_fake_upstream.url, "KODIFY_ACTION_MODELS": "false"}
    )
    with httpx.Client(base_url=server.url, timeout=30) as client:
        names = [card["id"] for card in client.get("/v1/models").json()["data"]]
        assert names == ["fake-model"]
        refused = client.post(
            "/v1/chat/completions",
            json={"model": "fake-model:fix", "messages": [{"role": "user", "content": "x"}]},
        )
        assert refused.status_code == 404  # an unknown model, as any other
        action = client.post("/v1/actions/explain", json={"code": "x = 1", "language": "python"})
        assert action.status_code == 200


def test_the_context_is_trimmed_to_the_models_window_and_the_code_never(
    client: httpx.Client, fake: FakeUpstream
) -> None:
    marker = uuid.uuid4().hex
    context = "\n".join(f"c{marker[:6]}_{i:03d} = {i}" for i in range(120))
    code = f"c{marker[:6]}_060 = 60"  # the code sits in the middle of its context
    body = {"code": code, "language": "python", "context": context, "max_tokens": 3000}
    response = client.post("/v1/actions/explain", json=body)
    assert response.status_code == 200, response.text
    sent = sent_upstream(fake, f"c{marker[:6]}_059")["messages"][-1]["content"]
    kept = [i for i in range(120) if f"c{marker[:6]}_{i:03d} =" in sent]
    assert 60 in kept and 0 not in kept and 119 not in kept  # the nearest lines only
    too_big = client.post(
        "/v1/actions/explain",
        json={"code": "x = 1\n" * 800, "language": "python", "max_tokens": 3000},
    )
    assert too_big.status_code == 400
    error = too_big.json()["error"]
    assert (error["code"], error["param"]) == ("context_length_exceeded", "code")
    assert "4,096 tokens" in error["message"]
