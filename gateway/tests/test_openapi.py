"""The OpenAPI document (gateway/openapi.py) is valid, and real answers match it.

Every answer a real server gives here is validated against the schema the document
declares for its path, method, status and media type, and its status must be documented:
a change of the API that forgets the document fails these tests.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import msgspec
import pytest
from django.conf import settings
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

from gateway.api_schema.requests import (
    DOCUMENTED,
    ChatMessage,
    TabbyDebugOptions,
    TabbySegments,
    TabbySnippet,
)
from gateway.errors import OpenAIError
from gateway.openai_api import Endpoint, is_tabby_body, parse_request
from gateway.openapi import document
from gateway.tabby import parse_completion
from gateway.tests.fake_upstream import DEFAULT_MODEL, FakeUpstreamServer
from kodify_site import __version__
from kodify_site.testing import KodifyServer

pytestmark = pytest.mark.smoke

TOKEN = "openapi-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BODY_LIMIT = 4096
CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"
MESSAGES = [{"role": "user", "content": "hi"}]


# -- reading the document -------------------------------------------------------------


def resolve(doc: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
    """Follow an OpenAPI-level ``$ref`` (a response or header) into ``#/components``."""
    while "$ref" in item:
        kind, name = item["$ref"].removeprefix("#/components/").split("/")
        item = doc["components"][kind][name]
    return item


def schema_errors(doc: dict[str, Any], schema: dict[str, Any], instance: Any) -> list[str]:
    # The schema's own "#/components/..." references resolve against this root.
    validator = Draft202012Validator(
        {**schema, "components": doc["components"]},
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )
    # An anyOf failure says little by itself; its alternatives' errors say why.
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        + "".join(f"\n  - {sub.message}" for sub in e.context or ())
        for e in validator.iter_errors(instance)
    ]


def request_schema(doc: dict[str, Any], path: str) -> dict[str, Any]:
    schema: dict[str, Any] = doc["paths"][path]["post"]["requestBody"]["content"][
        "application/json"
    ]["schema"]
    return schema


def check(
    doc: dict[str, Any], response: httpx.Response, path: str, operation: str | None = None
) -> Any:
    """Assert ``response`` is what the document promises; return its decoded body.

    ``operation`` names the documented method when the request used another one (a 405 is
    declared on the operations of the path it answers for).
    """
    method = operation or response.request.method.lower()
    responses = doc["paths"][path][method]["responses"]
    status = str(response.status_code)
    assert status in responses, f"{method.upper()} {path} answered undocumented {status}"
    spec = resolve(doc, responses[status])
    for name, header in spec.get("headers", {}).items():
        if resolve(doc, header).get("required"):
            assert name in response.headers, f"{path} {status}: no {name} header"
    content = spec.get("content")
    if not content:
        assert response.content == b""
        return None
    media = response.headers["content-type"].split(";")[0].strip()
    assert media in content, f"{path} {status}: undocumented content type {media}"
    if media == "text/event-stream":
        return check_events(doc, content[media]["x-sse-data-schema"], response.text)
    body = response.json()
    errors = schema_errors(doc, content[media]["schema"], body)
    assert not errors, f"{method.upper()} {path} {status}: {errors}\n{body}"
    return body


def check_events(doc: dict[str, Any], schema: dict[str, Any], text: str) -> list[Any]:
    """Every ``data:`` event but the final ``[DONE]`` is JSON matching ``schema``."""
    data = [
        line.removeprefix("data:").strip()
        for event in text.split("\n\n")
        for line in event.splitlines()
        if line.startswith("data:")
    ]
    assert data and data[-1] == "[DONE]", text
    assert "[DONE]" not in data[:-1], text
    events = [json.loads(item) for item in data[:-1]]
    assert events, "the stream had no event before [DONE]"
    for event in events:
        errors = schema_errors(doc, schema, event)
        assert not errors, f"stream event {event}: {errors}"
    return events


# -- the document itself --------------------------------------------------------------


def test_document_is_valid_openapi_31() -> None:
    doc = document()
    validate(doc)  # raises on any violation of the OpenAPI 3.1 schema or a broken $ref
    assert doc["openapi"].startswith("3.1.")
    assert doc["info"]["version"] == __version__
    for schema in doc["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)
    assert set(doc["paths"]) == {
        "/health",
        "/v1/models",
        CHAT,
        COMPLETIONS,
        "/v1/openapi.json",
        "/v1/health",
        "/v1beta/server_setting",
        "/v1/events",
        "/v1/actions/{action}",
        "/v1beta/chat/completions",
        "/tokenize",
        "/detokenize",
    }
    assert doc["security"] == [{"bearerAuth": []}]
    assert doc["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    # Only /health and the document itself are public.
    public = {
        path
        for path, item in doc["paths"].items()
        for operation in item.values()
        if operation.get("security") == []
    }
    assert public == {"/health", "/v1/openapi.json"}


def _too_many() -> int:
    return int(settings.MAX_N) + 1


# (endpoint, body): the documented request schema must accept exactly the bodies that
# gateway/openai_api.py accepts.
REQUEST_CASES: list[tuple[Endpoint, dict[str, Any]]] = [
    (Endpoint.CHAT, {"messages": MESSAGES}),
    (Endpoint.CHAT, {"model": "m", "messages": MESSAGES, "stream": True, "n": 2, "x": [1]}),
    (Endpoint.CHAT, {"model": None, "messages": MESSAGES, "temperature": None, "n": None}),
    (Endpoint.CHAT, {"messages": [{"role": "user", "content": [{"type": "text"}]}]}),
    (Endpoint.CHAT, {"messages": [{"role": "assistant", "content": None}], "top_p": 1}),
    (Endpoint.CHAT, {"messages": MESSAGES, "max_tokens": 0, "stream_options": {}}),
    (Endpoint.CHAT, {"messages": MESSAGES, "temperature": 2, "best_of": 1}),
    (Endpoint.CHAT, {}),
    (Endpoint.CHAT, {"messages": []}),
    (Endpoint.CHAT, {"messages": "hi"}),
    (Endpoint.CHAT, {"messages": [{"content": "hi"}]}),
    (Endpoint.CHAT, {"messages": [{"role": "", "content": "hi"}]}),
    (Endpoint.CHAT, {"messages": [{"role": "user", "content": 5}]}),
    (Endpoint.CHAT, {"messages": MESSAGES, "model": ""}),
    (Endpoint.CHAT, {"messages": MESSAGES, "model": "  "}),
    (Endpoint.CHAT, {"messages": MESSAGES, "model": 5}),
    (Endpoint.CHAT, {"messages": MESSAGES, "stream": "yes"}),
    (Endpoint.CHAT, {"messages": MESSAGES, "stream_options": []}),
    (Endpoint.CHAT, {"messages": MESSAGES, "n": 0}),
    (Endpoint.CHAT, {"messages": MESSAGES, "n": _too_many()}),
    (Endpoint.CHAT, {"messages": MESSAGES, "best_of": _too_many()}),
    (Endpoint.CHAT, {"messages": MESSAGES, "n": True}),
    (Endpoint.CHAT, {"messages": MESSAGES, "temperature": 2.5}),
    (Endpoint.CHAT, {"messages": MESSAGES, "temperature": "hot"}),
    (Endpoint.CHAT, {"messages": MESSAGES, "top_p": -0.1}),
    (Endpoint.CHAT, {"messages": MESSAGES, "max_tokens": -1}),
    (Endpoint.CHAT, {"messages": MESSAGES, "max_completion_tokens": "9"}),
    (Endpoint.CHAT, {"messages": MESSAGES, "stop": ["a", "b"], "seed": -1, "n": 2.0}),
    (Endpoint.CHAT, {"messages": MESSAGES, "stop": [1]}),
    (Endpoint.CHAT, {"messages": MESSAGES, "stop": ["a"] * 5}),
    (Endpoint.CHAT, {"messages": MESSAGES, "max_tokens": 1e29}),
    (Endpoint.CHAT, {"messages": MESSAGES, "seed": 2**63}),
    (Endpoint.CHAT, {"messages": MESSAGES, "presence_penalty": 2.5}),
    (Endpoint.COMPLETIONS, {"prompt": "x", "logprobs": 2**63}),
    (Endpoint.COMPLETIONS, {"prompt": "x", "frequency_penalty": -2.5}),
    (Endpoint.COMPLETIONS, {"prompt": "def f(", "suffix": "\n", "n": 1, "extra": {}}),
    (Endpoint.COMPLETIONS, {"prompt": ["a", "b"]}),
    (Endpoint.COMPLETIONS, {"prompt": [1, 2, 3]}),
    (Endpoint.COMPLETIONS, {"prompt": [[1, 2], [3]]}),
    (Endpoint.COMPLETIONS, {}),
    (Endpoint.COMPLETIONS, {"prompt": []}),
    (Endpoint.COMPLETIONS, {"prompt": 5}),
    (Endpoint.COMPLETIONS, {"prompt": ["a", 1]}),
    (Endpoint.COMPLETIONS, {"prompt": [[1], []]}),
    (Endpoint.COMPLETIONS, {"prompt": [[1], ["a"]]}),
    (Endpoint.COMPLETIONS, {"prompt": [0, 2**31 - 1]}),
    (Endpoint.COMPLETIONS, {"prompt": [1.0, 2]}),  # 1.0 is an integer for JSON Schema too
    (Endpoint.COMPLETIONS, {"prompt": [[1, 2.0], [3]]}),
    (Endpoint.COMPLETIONS, {"prompt": [-1]}),
    (Endpoint.COMPLETIONS, {"prompt": [2**31]}),
    (Endpoint.COMPLETIONS, {"prompt": [[1], [2**40]]}),
    (Endpoint.COMPLETIONS, {"prompt": [1.5]}),
    (Endpoint.COMPLETIONS, {"prompt": [True]}),
    (Endpoint.COMPLETIONS, {"prompt": [1, "a"]}),
    (Endpoint.COMPLETIONS, {"prompt": "x", "suffix": 5}),
    (Endpoint.COMPLETIONS, {"prompt": "x", "n": _too_many()}),
    (Endpoint.COMPLETIONS, {"segments": {"prefix": "def f(", "suffix": ")"}, "language": "py"}),
    (
        Endpoint.COMPLETIONS,
        {
            "segments": {
                "prefix": "x",
                "declarations": [{"filepath": "a.py", "body": "A = 1"}],
                "clipboard": None,
            },
            "debug_options": {"return_prompt": True},
            "temperature": 0.2,
            "seed": 1,
        },
    ),
    (Endpoint.COMPLETIONS, {"segments": {"suffix": "x"}}),
    (Endpoint.COMPLETIONS, {"segments": {"prefix": 1}}),
    (Endpoint.COMPLETIONS, {"segments": []}),
    (Endpoint.COMPLETIONS, {"segments": {"prefix": "x", "declarations": [{"body": 2}]}}),
    (Endpoint.COMPLETIONS, {"segments": {"prefix": "x"}, "temperature": 3}),
    (Endpoint.COMPLETIONS, {"segments": {"prefix": "x"}, "debug_options": {"return_prompt": 1}}),
    (Endpoint.TOKENIZE, {"prompt": "def f("}),
    (Endpoint.TOKENIZE, {"model": "m", "prompt": "", "add_special_tokens": False}),
    (Endpoint.TOKENIZE, {"messages": MESSAGES, "add_generation_prompt": True}),
    (Endpoint.TOKENIZE, {"prompt": None, "messages": MESSAGES}),
    (Endpoint.TOKENIZE, {}),
    (Endpoint.TOKENIZE, {"prompt": None}),
    (Endpoint.TOKENIZE, {"model": "m"}),
    (Endpoint.TOKENIZE, {"prompt": 5}),
    (Endpoint.TOKENIZE, {"prompt": "x", "model": ""}),
    (Endpoint.TOKENIZE, {"messages": "hi"}),
    (Endpoint.TOKENIZE, {"messages": [{"content": "hi"}]}),
    (Endpoint.DETOKENIZE, {"tokens": [1, 2, 3]}),
    (Endpoint.DETOKENIZE, {"model": "m", "tokens": []}),
    (Endpoint.DETOKENIZE, {"tokens": [1.0]}),
    (Endpoint.DETOKENIZE, {}),
    (Endpoint.DETOKENIZE, {"tokens": None}),
    (Endpoint.DETOKENIZE, {"tokens": [-1]}),
    (Endpoint.DETOKENIZE, {"tokens": [1.5]}),
    (Endpoint.DETOKENIZE, {"tokens": ["a"]}),
    (Endpoint.DETOKENIZE, {"tokens": [2**31]}),
]
PATHS = {
    Endpoint.CHAT: CHAT,
    Endpoint.COMPLETIONS: COMPLETIONS,
    Endpoint.TOKENIZE: "/tokenize",
    Endpoint.DETOKENIZE: "/detokenize",
}


def _gateway_accepts(endpoint: Endpoint, body: dict[str, Any]) -> None:
    """Raise the gateway's error for ``body``, as the consumer would."""
    if endpoint is Endpoint.COMPLETIONS and is_tabby_body(body):
        parse_completion(body)
    else:
        parse_request(endpoint, json.dumps(body).encode(), max_n=settings.MAX_N)


def test_request_components_are_the_structs_the_gateway_checks() -> None:
    schemas = document()["components"]["schemas"]
    for struct in (*DOCUMENTED, ChatMessage, TabbySegments, TabbySnippet, TabbyDebugOptions):
        fields = msgspec.structs.fields(struct)
        assert set(schemas[struct.__name__]["properties"]) == {f.encode_name for f in fields}
        assert schemas[struct.__name__]["additionalProperties"] is True  # passed through


def test_the_document_states_the_max_n_in_force() -> None:
    for max_n in (1, 7):
        schemas = document(max_n)["components"]["schemas"]
        for name in ("ChatCompletionRequest", "CompletionRequest"):
            for key in ("n", "best_of"):
                field = schemas[name]["properties"][key]
                assert field["maximum"] == max_n
                assert f"at most {max_n} " in field["description"]
    assert document(7) is not document(1)


@pytest.mark.parametrize(("endpoint", "body"), REQUEST_CASES)
def test_request_schema_agrees_with_the_gateway(endpoint: Endpoint, body: dict[str, Any]) -> None:
    doc = document()
    path = PATHS[endpoint]
    documented = not schema_errors(doc, request_schema(doc, path), body)
    try:
        _gateway_accepts(endpoint, body)
    except OpenAIError as error:
        assert not documented, f"the document accepts a body the gateway refuses: {error}"
    else:
        assert documented, "the document refuses a body the gateway accepts"


# -- real answers ---------------------------------------------------------------------


def _client(
    kodify_server: Callable[..., KodifyServer],
    fake_upstream: FakeUpstreamServer,
    **env: str,
) -> Iterator[httpx.Client]:
    server = kodify_server(
        {
            "KODIFY_UPSTREAMS": fake_upstream.url,
            "VLLM_API_KEY": TOKEN,  # one-token mode, so 401s can be seen
            "MAX_N": str(settings.MAX_N),  # the served document must equal ours
            **env,
        }
    )
    with httpx.Client(base_url=server.url, timeout=20) as client:
        yield client


@pytest.fixture
def client(
    kodify_server: Callable[..., KodifyServer], fake_upstream: FakeUpstreamServer
) -> Iterator[httpx.Client]:
    yield from _client(kodify_server, fake_upstream)


@pytest.fixture
def strict_client(
    kodify_server: Callable[..., KodifyServer], fake_upstream: FakeUpstreamServer
) -> Iterator[httpx.Client]:
    """A server with a small body limit and a short wait for the upstream's answer."""
    yield from _client(
        kodify_server,
        fake_upstream,
        KODIFY_MAX_BODY_BYTES=str(BODY_LIMIT),
        KODIFY_UPSTREAM_FIRST_BYTE_TIMEOUT="1",
    )


def test_successful_answers_match_the_document(client: httpx.Client) -> None:
    doc = document()

    served = client.get("/v1/openapi.json")  # no token: the document is public
    assert check(doc, served, "/v1/openapi.json") == doc

    health = check(doc, client.get("/health"), "/health")
    assert health["auth_mode"] == "one-token"
    assert health["version"] == __version__
    assert health["upstreams_total"] == 1
    assert check(doc, client.head("/health"), "/health") is None

    models = check(doc, client.get("/v1/models", headers=AUTH), "/v1/models")
    assert [card["id"] for card in models["data"] if "kodify_action" not in card] == [DEFAULT_MODEL]
    assert {card["parent"] for card in models["data"] if "kodify_action" in card} == {DEFAULT_MODEL}
    assert models["data"][0]["max_model_len"] == 4096

    body: dict[str, Any] = {"messages": MESSAGES, "n": 2, "fake": {"chunks": 3}}
    assert not schema_errors(doc, request_schema(doc, CHAT), body)
    chat = check(doc, client.post(CHAT, json=body, headers=AUTH), CHAT)
    assert chat["object"] == "chat.completion"
    assert chat["model"] == DEFAULT_MODEL  # no model: the default one
    assert len(chat["choices"]) == 2

    body = {"model": DEFAULT_MODEL, "prompt": "def f(", "max_tokens": 8}
    assert not schema_errors(doc, request_schema(doc, COMPLETIONS), body)
    completion = check(doc, client.post(COMPLETIONS, json=body, headers=AUTH), COMPLETIONS)
    assert completion["object"] == "text_completion"

    for prefix in ("", "/v1"):  # one operation, at vLLM's path and under /v1
        body = {"prompt": "def f(", "return_token_strs": True}
        assert not schema_errors(doc, request_schema(doc, "/tokenize"), body)
        served = client.post(f"{prefix}/tokenize", json=body, headers=AUTH)
        tokens = check(doc, served, "/tokenize")
        assert tokens["count"] == len(tokens["tokens"]) == len(tokens["token_strs"]) == 6
        body = {"model": DEFAULT_MODEL, "tokens": tokens["tokens"]}
        assert not schema_errors(doc, request_schema(doc, "/detokenize"), body)
        served = client.post(f"{prefix}/detokenize", json=body, headers=AUTH)
        assert check(doc, served, "/detokenize") == {"prompt": "def f("}

    body = {"messages": MESSAGES, "stream": True, "stream_options": {"include_usage": True}}
    response = client.post(CHAT, json=body, headers=AUTH)
    assert response.headers["content-type"].startswith("text/event-stream")
    events = check(doc, response, CHAT)
    assert all(event["object"] == "chat.completion.chunk" for event in events)
    assert events[-1]["choices"] == [] and events[-1]["usage"]["total_tokens"] > 0

    body = {"prompt": ["a", "b"], "stream": True, "fake": {"chunks": 4}}
    response = client.post(COMPLETIONS, json=body, headers=AUTH)
    assert response.headers["content-type"].startswith("text/event-stream")
    assert len(check(doc, response, COMPLETIONS)) == 4

    tabby_health = check(doc, client.get("/v1/health", headers=AUTH), "/v1/health")
    assert tabby_health["model"] == DEFAULT_MODEL and tabby_health["device"]
    assert check(doc, client.post("/v1/health", headers=AUTH), "/v1/health") == tabby_health
    setting = check(
        doc, client.get("/v1beta/server_setting", headers=AUTH), "/v1beta/server_setting"
    )
    assert setting == {"disable_client_side_telemetry": False}

    body = {
        "language": "python",
        "segments": {"prefix": "def f(x):\n    ", "suffix": "\n"},
        "debug_options": {"return_prompt": True, "return_snippets": True},
    }
    assert not schema_errors(doc, request_schema(doc, COMPLETIONS), body)
    tabby = check(doc, client.post(COMPLETIONS, json=body, headers=AUTH), COMPLETIONS)
    assert tabby["id"].startswith("cmpl-") and tabby["debug_data"]["prompt"]
    event = {"type": "view", "completion_id": tabby["id"], "choice_index": 0, "elapsed": 1}
    assert not schema_errors(doc, request_schema(doc, "/v1/events"), event)
    assert check(doc, client.post("/v1/events", json=event, headers=AUTH), "/v1/events") is None
    refused = client.post("/v1/events", json={"type": "launch"}, headers=AUTH)
    assert check(doc, refused, "/v1/events")["error"]["param"] == "type"
    not_given = {**event, "completion_id": "cmpl-1"}  # no completion this token got
    unknown = client.post("/v1/events", json=not_given, headers=AUTH)
    assert check(doc, unknown, "/v1/events")["error"]["code"] == "completion_not_found"
    path = "/v1beta/chat/completions"
    chat = check(doc, client.post(path, json={"messages": MESSAGES}, headers=AUTH), path)
    assert chat["object"] == "chat.completion"

    # By now the upstream has been checked: last_check is a date-time (format-checked).
    health = check(doc, client.get("/health"), "/health")
    assert health["upstreams"][0]["checked"] is True
    assert health["upstreams"][0]["last_check"] is not None


def test_error_answers_match_the_document(strict_client: httpx.Client) -> None:
    doc = document()
    client = strict_client

    def error(
        response: httpx.Response, path: str, status: int, operation: str | None = None
    ) -> Any:
        assert response.status_code == status, response.text
        return check(doc, response, path, operation)["error"]

    bad_json = client.post(CHAT, content=b"{nope", headers=AUTH)
    assert error(bad_json, CHAT, 400)["code"] == "invalid_json"

    body: dict[str, Any] = {"messages": MESSAGES, "n": _too_many()}
    assert schema_errors(doc, request_schema(doc, CHAT), body)
    too_many = error(client.post(CHAT, json=body, headers=AUTH), CHAT, 400)
    assert (too_many["code"], too_many["param"]) == ("n_too_large", "n")

    body = {"prompt": "x", "temperature": 3}
    assert schema_errors(doc, request_schema(doc, COMPLETIONS), body)
    hot = error(client.post(COMPLETIONS, json=body, headers=AUTH), COMPLETIONS, 400)
    assert hot["param"] == "temperature"

    body = {"model": "no-such-model", "prompt": "x"}
    unknown = error(client.post(COMPLETIONS, json=body, headers=AUTH), COMPLETIONS, 404)
    assert unknown["code"] == "model_not_found"

    # The fake model's name matches no FIM config: Kodify refuses a suffix itself.
    body = {"prompt": "def f(", "suffix": ")"}
    assert not schema_errors(doc, request_schema(doc, COMPLETIONS), body)
    no_fim = error(client.post(COMPLETIONS, json=body, headers=AUTH), COMPLETIONS, 400)
    assert (no_fim["code"], no_fim["param"]) == ("suffix_not_supported", "suffix")

    no_input = error(client.post("/tokenize", json={}, headers=AUTH), "/tokenize", 400)
    assert no_input["param"] == "prompt"
    body = {"model": "no-such-model", "tokens": [1]}
    no_model = error(client.post("/detokenize", json=body, headers=AUTH), "/detokenize", 404)
    assert no_model["code"] == "model_not_found"
    error(client.get("/v1/tokenize", headers=AUTH), "/tokenize", 405, "post")
    error(client.post("/tokenize", json={"prompt": "x"}), "/tokenize", 401)

    wrong_method = client.get(CHAT, headers=AUTH)
    assert error(wrong_method, CHAT, 405, "post")["code"] == "method_not_allowed"
    assert wrong_method.headers["allow"] == "POST"
    error(client.post("/v1/models", headers=AUTH), "/v1/models", 405, "get")
    error(client.post("/health"), "/health", 405, "get")

    missing = error(client.get("/v1/models"), "/v1/models", 401)
    assert missing["code"] == "missing_api_key"
    wrong = client.post(CHAT, json={"messages": MESSAGES}, headers={"Authorization": "Bearer x"})
    assert error(wrong, CHAT, 401)["code"] == "invalid_api_key"

    body = {"messages": MESSAGES, "padding": "x" * BODY_LIMIT}
    error(client.post(CHAT, json=body, headers=AUTH), CHAT, 413)

    # The upstream refusing Kodify's key is Kodify's 502; its other errors keep their status.
    body = {"messages": MESSAGES, "fake": {"status": 401}}
    refused = error(client.post(CHAT, json=body, headers=AUTH), CHAT, 502)
    assert refused["code"] == "upstream_auth_failed"
    body = {"prompt": "x", "fake": {"status": 503}}
    error(client.post(COMPLETIONS, json=body, headers=AUTH), COMPLETIONS, 503)

    body = {"prompt": "x", "fake": {"first_byte_delay": 3}}
    late = error(client.post(COMPLETIONS, json=body, headers=AUTH), COMPLETIONS, 504)
    assert late["code"] == "upstream_timeout"
