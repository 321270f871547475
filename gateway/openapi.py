"""The OpenAPI 3.1 document of the public API (``GET /v1/openapi.json``).

The public API is served by Channels consumers, not DRF views, so no framework writes
this document.  Its request schemas are generated from the Structs the gateway checks
bodies against (gateway/api_schema/requests.py): they describe the fields the gateway
reads and allow any other, which it passes through.  Paths, responses and the answer
schemas (gateway/api_schema/answers.py) are written here by hand.

gateway/tests/test_openapi.py checks this document against real answers.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from django.conf import settings

from gateway.api_schema.answers import answer_schemas, gateway_schemas
from gateway.api_schema.components import query_parameters, request_schemas
from gateway.api_schema.requests import TabbyEventQuery
from journal.features import Feature
from kodify_site import __version__

JSON = "application/json"
SSE = "text/event-stream"


def _ref(kind: str, name: str) -> dict[str, str]:
    return {"$ref": f"#/components/{kind}/{name}"}


def _schema(name: str) -> dict[str, str]:
    return _ref("schemas", name)


def _error(description: str, **headers: dict[str, Any]) -> dict[str, Any]:
    return {
        "description": description,
        "headers": {"X-Request-Id": _ref("headers", "XRequestId"), **headers},
        "content": {JSON: {"schema": _schema("ErrorResponse")}},
    }


def _ok(
    description: str, schema: dict[str, Any], *, stream_event: str | None = None
) -> dict[str, Any]:
    content: dict[str, Any] = {JSON: {"schema": schema}}
    if stream_event is not None:
        content[SSE] = {
            # As OpenAPI 3.1 reads an event stream: the schema of each event.
            "schema": {
                "type": "object",
                "description": "One Server-Sent Event: `data: <JSON>` events, then `data: [DONE]`.",
                "required": ["data"],
                "properties": {
                    "data": {"type": "string"},
                    "event": {"type": "string"},
                    "id": {"type": "string"},
                    "retry": {"type": "integer"},
                },
            },
            # OpenAPI 3.1 cannot describe an event stream's items (3.2's itemSchema can):
            # this extension names the schema of each `data:` JSON, for clients and tests.
            "x-sse-data-schema": {"anyOf": [_schema(stream_event), _schema("StreamError")]},
        }
    return {
        "description": description,
        "headers": {"X-Request-Id": _ref("headers", "XRequestId")},
        "content": content,
    }


_GENERATION_ERRORS = {
    "400": _ref("responses", "BadRequest"),
    "401": _ref("responses", "Unauthorized"),
    "403": _ref("responses", "ModelNotAllowed"),
    "404": _ref("responses", "ModelNotFound"),
    "405": _ref("responses", "MethodNotAllowed"),
    "413": _ref("responses", "PayloadTooLarge"),
    "429": _ref("responses", "TooManyRequests"),
    "500": _ref("responses", "InternalError"),
    "502": _ref("responses", "BadGateway"),
    "503": _ref("responses", "ServiceUnavailable"),
    "504": _ref("responses", "GatewayTimeout"),
    "default": _ref("responses", "UpstreamError"),
}


def _generation(
    summary: str, operation_id: str, request: str, answer: str, chunk: str, description: str
) -> dict[str, Any]:
    return {
        "post": {
            "tags": ["completions"],
            "operationId": operation_id,
            "summary": summary,
            "description": description
            + "\n\nThe request goes to a healthy upstream serving `model` (the least busy "
            "replica). With `stream: true` the answer is Server-Sent Events passed through "
            "chunk by chunk as the upstream produces them, ending with `data: [DONE]`; an "
            "error after the stream began arrives as a last `data:` event with an error "
            "body. Closing the connection cancels the generation upstream.",
            "parameters": [
                {
                    "name": "X-Kodify-Feature",
                    "in": "header",
                    "required": False,
                    "description": "The assistant action this request serves, as the journal "
                    f"records it: one of {', '.join(f'`{f}`' for f in Feature.values)}, in any "
                    "case and with surrounding spaces. Any other value is taken too, and "
                    "recorded as the default: `chat` for chat completions, `completion` for "
                    "completions.",
                    # Not an enum: the gateway never refuses a request for this header.
                    "schema": {"type": "string", "examples": list(Feature.values)},
                }
            ],
            "requestBody": {
                "required": True,
                "content": {JSON: {"schema": _schema(request)}},
            },
            "responses": {
                "200": _ok(
                    "The upstream's answer: JSON, or an event stream when `stream` is true.",
                    _schema(answer),
                    stream_event=chunk,
                ),
                **_GENERATION_ERRORS,
            },
        }
    }


def _action() -> dict[str, Any]:
    """An assistant action: the chat pipeline, with the messages built by the server."""
    operation = _generation(
        "Assistant action: document, fix, test or explain code",
        "createAction",
        "ActionRequest",
        "ChatCompletion",
        "ChatCompletionChunk",
        "The server builds the chat messages from its template for the action and the "
        "code's language (Python, C#, Java, Go, JavaScript and TypeScript have their own "
        "conventions; other languages a generic template), then answers as a chat "
        "completion. `fix` answers with the corrected code in one fenced block first, "
        "`tests` with one runnable test file. The journal records the action as the "
        "request's feature. The same actions are models too: `<model>:<action>` in "
        "`GET /v1/models` (unless KODIFY_ACTION_MODELS is off).",
    )["post"]
    operation["tags"] = ["actions"]
    operation["parameters"] = [
        {
            "name": "action",
            "in": "path",
            "required": True,
            "schema": {"type": "string", "enum": ["docs", "fix", "tests", "explain"]},
        }
    ]
    return {"post": operation}


def _tokenizer(
    summary: str, operation_id: str, request: str, answer: str, description: str
) -> dict[str, Any]:
    return {
        "post": {
            "tags": ["tokenizer"],
            "operationId": operation_id,
            "summary": summary,
            "description": description
            + " Routed by `model` and answered by vLLM, as a generation is; the same "
            "operation answers under `/v1` too. Nothing is generated, and nothing is "
            "recorded in the journal.",
            "requestBody": {
                "required": True,
                "content": {JSON: {"schema": _schema(request)}},
            },
            "responses": {
                "200": _ok("vLLM's answer.", _schema(answer)),
                **_GENERATION_ERRORS,
            },
        }
    }


def _with_tabby_shape(path: dict[str, Any]) -> dict[str, Any]:
    """``/v1/completions`` takes a Tabby body too, answered in Tabby's shape."""
    operation = path["post"]
    body = operation["requestBody"]["content"][JSON]
    body["schema"] = {"anyOf": [body["schema"], _schema("TabbyCompletionRequest")]}
    answer = operation["responses"]["200"]["content"][JSON]
    answer["schema"] = {"anyOf": [answer["schema"], _schema("TabbyCompletion")]}
    return path


def _responses() -> dict[str, Any]:
    retry_after = {
        "description": "Seconds after which a retry may succeed.",
        "schema": {"type": "integer"},
    }
    return {
        "BadRequest": _error(
            "Invalid body: not JSON, wrong types, a missing `messages`/`prompt`, a value out "
            "of range, `n` or `best_of` above MAX_N (`code` says which)."
        ),
        "Unauthorized": _error(
            "Missing, malformed or invalid API token.",
            **{"WWW-Authenticate": {"required": True, "schema": {"type": "string"}}},
        ),
        "ModelNotAllowed": _error(
            "Per-user mode: the caller's user may not use this `model` (or the default model "
            "when `model` is omitted); `code` is `model_not_allowed`. An upstream's own 403 "
            "is passed on too."
        ),
        "ModelNotFound": _error("No upstream serves the requested `model`."),
        "CompletionNotFound": _error(
            "`completion_id` names no completion given to the caller's API token: made up, "
            "or another token's (`code` `completion_not_found`)."
        ),
        "MethodNotAllowed": _error(
            "This path does not answer that HTTP method.",
            Allow={"required": True, "schema": {"type": "string"}},
        ),
        "PayloadTooLarge": _error("The body is over KODIFY_MAX_BODY_BYTES."),
        "InternalError": _error("A bug in Kodify; the server log has the request id."),
        "BadGateway": _error(
            "The upstream broke the connection, or refused Kodify's upstream API key."
        ),
        "ServiceUnavailable": _error(
            "No upstream configured, or every upstream serving the model is down.",
            **{"Retry-After": retry_after},
        ),
        "GatewayTimeout": _error(
            "The upstream could not be reached or sent no answer in time "
            "(KODIFY_UPSTREAM_CONNECT_TIMEOUT, KODIFY_UPSTREAM_FIRST_BYTE_TIMEOUT)."
        ),
        "TooManyRequests": _error(
            "Per-user mode: over one of the user's limits, `code` `rate_limit_exceeded` "
            "(requests per minute, a sliding window) or `too_many_concurrent_requests` "
            "(requests in flight), with `Retry-After`. An upstream's own 429 is passed on "
            "too, without that header.",
            **{"Retry-After": retry_after},
        ),
        "UpstreamError": _error(
            "Another error status of the upstream (e.g. 422), passed on with its message."
        ),
    }


def _paths() -> dict[str, Any]:
    no_auth: list[dict[str, list[str]]] = []
    health_get = {
        "tags": ["health"],
        "operationId": "getHealth",
        "summary": "Liveness, and each upstream's state",
        "description": "Answers 200 whenever the server is up, whatever the upstreams' "
        "state; its status is no_upstreams when there is no enabled upstream at all. "
        "Never needs a token.",
        "security": no_auth,
        "responses": {
            "200": _ok("The server is up.", _schema("Health")),
            "405": _ref("responses", "MethodNotAllowed"),
        },
    }
    return {
        "/health": {
            "get": health_get,
            "head": {
                **health_get,
                "operationId": "headHealth",
                "responses": {"200": {"description": "The server is up."}},
            },
        },
        "/v1/models": {
            "get": {
                "tags": ["models"],
                "operationId": "listModels",
                "summary": "The models served by the upstreams",
                "description": "OpenAI's model list: each model served by an enabled "
                "upstream, once. In per-user mode, only the models the caller's user may use.",
                "responses": {
                    "200": _ok("The models.", _schema("ModelList")),
                    "401": _ref("responses", "Unauthorized"),
                    "405": _ref("responses", "MethodNotAllowed"),
                    "500": _ref("responses", "InternalError"),
                },
            }
        },
        "/v1/health": {
            method: {
                "tags": ["tabby"],
                "operationId": f"{method}TabbyHealth",
                "summary": "Health in Tabby's shape (what Tabby clients call on start)",
                "responses": {
                    "200": _ok("The server is up.", _schema("TabbyHealth")),
                    "401": _ref("responses", "Unauthorized"),
                    "405": _ref("responses", "MethodNotAllowed"),
                },
            }
            for method in ("get", "post")
        },
        "/v1beta/server_setting": {
            "get": {
                "tags": ["tabby"],
                "operationId": "getServerSetting",
                "summary": "Settings Tabby clients read (telemetry)",
                "responses": {
                    "200": _ok("The settings.", _schema("ServerSetting")),
                    "401": _ref("responses", "Unauthorized"),
                    "405": _ref("responses", "MethodNotAllowed"),
                },
            }
        },
        "/v1/chat/completions": _generation(
            "Chat completion (OpenAI)",
            "createChatCompletion",
            "ChatCompletionRequest",
            "ChatCompletion",
            "ChatCompletionChunk",
            "OpenAI's chat completions, proxied to vLLM.",
        ),
        "/v1/actions/{action}": _action(),
        "/v1/completions": _with_tabby_shape(
            _generation(
                "Text completion (OpenAI), or code completion (Tabby)",
                "createCompletion",
                "CompletionRequest",
                "Completion",
                "CompletionChunk",
                "OpenAI's (legacy) completions, proxied to vLLM; or, with a Tabby body "
                "(`segments`), a code completion answered in Tabby's shape (never streamed).",
            )
        ),
        "/v1beta/chat/completions": _generation(
            "Chat completion (the path of Tabby clients before 0.20)",
            "createTabbyChatCompletion",
            "ChatCompletionRequest",
            "ChatCompletion",
            "ChatCompletionChunk",
            "The same as `/v1/chat/completions`.",
        ),
        "/tokenize": _tokenizer(
            "Token ids of a prompt or of chat messages (vLLM)",
            "tokenize",
            "TokenizeRequest",
            "TokenizeResponse",
            "vLLM's tokenizer for `model`: the token ids of `prompt`, or of `messages` laid "
            "out in the model's chat template, with their count and the model's context "
            "length.",
        ),
        "/detokenize": _tokenizer(
            "The text of token ids (vLLM)",
            "detokenize",
            "DetokenizeRequest",
            "DetokenizeResponse",
            "vLLM's tokenizer backwards: the text of `tokens` for `model`.",
        ),
        "/v1/events": {
            "post": {
                "tags": ["tabby"],
                "operationId": "logEvent",
                "summary": "A completion was shown, accepted or dismissed (Tabby)",
                "description": "Answered at once with an empty 200; the event is stored "
                "with the journal (when it is on) for acceptance statistics. Taken only "
                "from the API token that got the completion: its id is signed for that "
                "token; another token gets a 404 (`completion_not_found`) and nothing is "
                "stored.",
                "parameters": query_parameters(TabbyEventQuery),
                "requestBody": {
                    "required": True,
                    "content": {JSON: {"schema": _schema("TabbyEvent")}},
                },
                "responses": {
                    "200": {
                        "description": "Taken (empty body).",
                        "headers": {"X-Request-Id": _ref("headers", "XRequestId")},
                    },
                    "400": _ref("responses", "BadRequest"),
                    "401": _ref("responses", "Unauthorized"),
                    "404": _ref("responses", "CompletionNotFound"),
                    "405": _ref("responses", "MethodNotAllowed"),
                    "413": _ref("responses", "PayloadTooLarge"),
                },
            }
        },
        "/v1/openapi.json": {
            "get": {
                "tags": ["meta"],
                "operationId": "getOpenAPIDocument",
                "summary": "This document",
                "security": no_auth,
                "responses": {
                    "200": _ok(
                        "The OpenAPI 3.1 document of the public API.",
                        {"type": "object", "required": ["openapi", "info", "paths"]},
                    ),
                    "405": _ref("responses", "MethodNotAllowed"),
                },
            }
        },
    }


def _with_request_id(paths: dict[str, Any]) -> dict[str, Any]:
    """Every operation takes the client's own X-Request-Id."""
    for item in paths.values():
        for operation in item.values():
            operation["parameters"] = [
                _ref("parameters", "XRequestId"),
                *operation.get("parameters", ()),
            ]
    return paths


def document(max_n: int | None = None) -> dict[str, Any]:
    """The document for this server; ``max_n``: the limit in force (the console's, if set)."""
    return _document(max_n or settings.MAX_N)


@cache
def _document(max_n: int) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
        "info": {
            "title": "Kodify API",
            "version": __version__,
            "summary": "OpenAI-compatible gateway to self-hosted vLLM servers.",
            "description": "Requests and answers follow OpenAI's API; the gateway checks "
            "a few fields, routes by `model`, and passes everything else through to vLLM. "
            'Every error has OpenAI\'s body `{"error": {"message", "type", "param", '
            '"code"}}`.',
        },
        "tags": [
            {"name": "completions", "description": "Generation, proxied to an upstream."},
            {
                "name": "actions",
                "description": "Assistant actions with the server's prompts: docs, fix, "
                "tests, explain.",
            },
            {"name": "models", "description": "What the upstreams serve."},
            {"name": "health", "description": "For monitoring and load balancers."},
            {"name": "tokenizer", "description": "vLLM's tokenizer, by model."},
            {"name": "tabby", "description": "What Tabby's IDE plugins call besides completions."},
            {"name": "meta", "description": "This description."},
        ],
        "security": [{"bearerAuth": []}],
        "paths": _with_request_id(_paths()),
        "components": {
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "`Authorization: Bearer <token>`: VLLM_API_KEY in "
                    "one-token mode, a user's token in per-user mode. In dummy mode (no "
                    "VLLM_API_KEY, MTSAI_AUTH false) any token or none is accepted.",
                }
            },
            "headers": {
                "XRequestId": {
                    "description": "This request's id, as the server log names it: the "
                    "client's own `X-Request-Id` when it sent a well-formed one, else one "
                    "Kodify made. The upstream got the same id.",
                    "required": True,
                    "schema": {"type": "string"},
                }
            },
            "parameters": {
                "XRequestId": {
                    "name": "X-Request-Id",
                    "in": "header",
                    "required": False,
                    "description": "The client's own id for this request, to follow it "
                    "through its logs, Kodify's and the upstream's. Kept when well-formed "
                    "(1 to 128 characters of `A-Z`, `a-z`, `0-9`, `.`, `_`, `:`, `-`): "
                    "answered back in the `X-Request-Id` header, named in Kodify's log and "
                    "journal, and sent to the upstream (vLLM makes it its request id). Any "
                    "other value is replaced by an id Kodify makes; none is refused.",
                    # No pattern: a value outside it is replaced, never refused.
                    "schema": {
                        "type": "string",
                        "examples": ["0f8fad5b-d9cb-469f-a165-70867728950e"],
                    },
                }
            },
            "schemas": {**request_schemas(max_n), **answer_schemas(), **gateway_schemas()},
            "responses": _responses(),
        },
    }
