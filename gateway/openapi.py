"""The OpenAPI 3.1 document of the public API (``GET /v1/openapi.json``).

Written by hand rather than generated: the public API is served by Channels consumers, not
DRF views, and its bodies are OpenAI's, of which the gateway checks only a few fields
(gateway/openai_api.py) and passes the rest through.  The request schemas therefore
describe those checked fields and allow any other; the answer schemas require what the
gateway or vLLM always sends and allow more, since vLLM adds fields between releases.

gateway/tests/test_openapi.py checks this document against real answers.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from django.conf import settings

from kodify_site import __version__

JSON = "application/json"
SSE = "text/event-stream"


def _ref(kind: str, name: str) -> dict[str, str]:
    return {"$ref": f"#/components/{kind}/{name}"}


def _schema(name: str) -> dict[str, str]:
    return _ref("schemas", name)


def _nullable(kind: str, **rest: Any) -> dict[str, Any]:
    # The gateway treats null like an absent field, so every optional field may be null.
    return {"type": [kind, "null"], **rest}


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
            "schema": {
                "type": "string",
                "description": "Server-Sent Events: `data: <JSON>` events, then `data: [DONE]`.",
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
                    "records it; without it (or with another value): `chat` for chat "
                    "completions, `completion` for completions.",
                    "schema": {
                        "type": "string",
                        "enum": ["completion", "chat", "docs", "fix", "tests", "explain"],
                    },
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


def _with_tabby_shape(path: dict[str, Any]) -> dict[str, Any]:
    """``/v1/completions`` takes a Tabby body too, answered in Tabby's shape."""
    operation = path["post"]
    body = operation["requestBody"]["content"][JSON]
    body["schema"] = {"anyOf": [body["schema"], _schema("TabbyCompletionRequest")]}
    answer = operation["responses"]["200"]["content"][JSON]
    answer["schema"] = {"anyOf": [answer["schema"], _schema("TabbyCompletion")]}
    return path


def _common_request_fields(max_n: int) -> dict[str, Any]:
    """The fields both generation endpoints check (gateway/openai_api.py)."""
    return {
        "model": _nullable(
            "string",
            pattern=r"\S",
            description="A model listed by `GET /v1/models`. Omitted or null: the default "
            "model (the first model of the first enabled upstream).",
        ),
        "stream": _nullable("boolean", default=False),
        "stream_options": _nullable(
            "object",
            properties={"include_usage": {"type": "boolean"}},
            description="With `include_usage`, the stream ends with a chunk carrying `usage`.",
        ),
        "n": _nullable(
            "integer",
            minimum=1,
            maximum=max_n,
            default=1,
            description=f"Answers to generate; at most {max_n} on this server (MAX_N).",
        ),
        "best_of": _nullable(
            "integer",
            minimum=1,
            maximum=max_n,
            description=f"Candidates to generate (vLLM); at most {max_n} (MAX_N).",
        ),
        "temperature": _nullable("number", minimum=0, maximum=2),
        "top_p": _nullable("number", minimum=0, maximum=1),
        "max_tokens": _nullable("integer", minimum=0),
        "max_completion_tokens": _nullable("integer", minimum=0),
    }


def _request_schemas(max_n: int) -> dict[str, Any]:
    token_ids = {"type": "array", "minItems": 1, "items": {"type": "integer"}}
    passthrough = (
        "Fields not listed here (sampling options, `tools`, vLLM's extra parameters…) "
        "are passed to the upstream unchanged."
    )
    return {
        "ChatCompletionRequest": {
            "type": "object",
            "description": "An OpenAI chat completion request. " + passthrough,
            "required": ["messages"],
            "properties": {
                **_common_request_fields(max_n),
                "messages": {
                    "type": "array",
                    "minItems": 1,
                    "items": _schema("ChatMessage"),
                },
            },
            "additionalProperties": True,
        },
        "ChatMessage": {
            "type": "object",
            "required": ["role"],
            "properties": {
                "role": {
                    "type": "string",
                    "minLength": 1,
                    "examples": ["system", "user", "assistant", "tool"],
                },
                "content": {
                    "type": ["string", "array", "null"],
                    "description": "Text, or an array of OpenAI content parts.",
                },
            },
            "additionalProperties": True,
        },
        "CompletionRequest": {
            "type": "object",
            "description": "An OpenAI (legacy) completion request. "
            + passthrough
            + " With `suffix`, when the model's preprocessing config says its server "
            "cannot take `suffix` (vLLM), Kodify lays prompt and suffix out in the model's "
            "fill-in-the-middle template and adds its FIM tokens to `stop`.",
            "required": ["prompt"],
            "properties": {
                **_common_request_fields(max_n),
                "prompt": {
                    "anyOf": [
                        {"type": "string"},
                        {"type": "array", "minItems": 1, "items": {"type": "string"}},
                        token_ids,
                        {"type": "array", "minItems": 1, "items": token_ids},
                    ],
                    "description": "A string, strings, or token ids (one list or several).",
                },
                "suffix": _nullable("string", description="Text after the completion (FIM)."),
            },
            "additionalProperties": True,
        },
        **_tabby_request_schemas(),
    }


def _tabby_request_schemas() -> dict[str, Any]:
    text = {"type": ["string", "null"]}
    snippets = {"type": ["array", "null"], "items": _schema("TabbySnippet")}
    return {
        "TabbyCompletionRequest": {
            "type": "object",
            "description": "A Tabby completion request, told apart from an OpenAI one by "
            "`segments` (and no `prompt`). Kodify builds the fill-in-the-middle prompt for "
            "the Tabby model (`tabby.model_name`, else the first upstream's model) from its "
            "preprocessing config, then cleans the model's text up (stop words, repeats of "
            "the suffix, loops, the cursor's block).",
            "required": ["segments"],
            "properties": {
                "language": {
                    **text,
                    "description": "VS Code's language id (`python`, `csharp`, `java`, `go`, "
                    "`javascript`, `typescript`…); unknown ones get generic rules.",
                },
                "segments": _schema("TabbySegments"),
                "user": text,
                "temperature": _nullable("number", minimum=0, maximum=2),
                "seed": _nullable("integer"),
                "mode": text,
                "debug_options": _schema("TabbyDebugOptions"),
            },
            "additionalProperties": True,
        },
        "TabbySegments": {
            "type": "object",
            "required": ["prefix"],
            "properties": {
                "prefix": {"type": "string", "description": "The text before the cursor."},
                "suffix": {**text, "description": "The text after the cursor."},
                "filepath": text,
                "git_url": text,
                "declarations": {
                    **snippets,
                    "description": "Declarations of the symbols near the cursor.",
                },
                "relevant_snippets_from_changed_files": snippets,
                "relevant_snippets_from_recently_opened_files": snippets,
                "clipboard": text,
            },
            "additionalProperties": True,
        },
        "TabbySnippet": {
            "type": "object",
            "required": ["body"],
            "properties": {
                "filepath": {"type": "string"},
                "body": {"type": "string"},
                "score": {"type": ["number", "null"]},
            },
            "additionalProperties": True,
        },
        "TabbyDebugOptions": {
            "type": ["object", "null"],
            "properties": {
                "raw_prompt": {**text, "description": "Sent to the model as it is."},
                "return_prompt": {"type": "boolean", "default": False},
                "return_snippets": {"type": "boolean", "default": False},
                "disable_retrieval_augmented_code_completion": {
                    "type": "boolean",
                    "default": False,
                    "description": "Leave the context snippets out of the prompt.",
                },
            },
            "additionalProperties": True,
        },
        "TabbyEvent": {
            "type": "object",
            "description": "What became of a completion in the editor; stored in the "
            "journal, linked to the completion's entry, for acceptance statistics.",
            "required": ["type", "completion_id"],
            "properties": {
                "type": {"enum": ["view", "select", "dismiss"]},
                "completion_id": {"type": "string", "minLength": 1, "maxLength": 64},
                "choice_index": _nullable("integer", minimum=0),
                "view_id": text,
                "elapsed": _nullable(
                    "number", minimum=0, description="Milliseconds the completion was shown."
                ),
            },
            "additionalProperties": True,
        },
    }


def _answer_schemas() -> dict[str, Any]:
    finish_reason = _nullable("string", examples=["stop", "length"])
    logprobs = {"type": ["object", "null"]}
    head = {
        "id": {"type": "string"},
        "created": {"type": "integer"},
        "model": {"type": "string"},
    }
    required = ["id", "object", "created", "model", "choices"]
    return {
        "Usage": {
            "type": "object",
            "required": ["prompt_tokens", "total_tokens"],
            "properties": {
                "prompt_tokens": {"type": "integer", "minimum": 0},
                "completion_tokens": _nullable("integer", minimum=0),
                "total_tokens": {"type": "integer", "minimum": 0},
            },
        },
        "ChatCompletion": {
            "type": "object",
            "required": [*required, "usage"],
            "properties": {
                **head,
                "object": {"const": "chat.completion"},
                "choices": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["index", "message"],
                        "properties": {
                            "index": {"type": "integer"},
                            "message": {
                                "type": "object",
                                "required": ["role"],
                                "properties": {
                                    "role": {"type": "string"},
                                    "content": {"type": ["string", "null"]},
                                },
                            },
                            "finish_reason": finish_reason,
                            "logprobs": logprobs,
                        },
                    },
                },
                "usage": _schema("Usage"),
            },
        },
        "ChatCompletionChunk": {
            "type": "object",
            "required": required,
            "properties": {
                **head,
                "object": {"const": "chat.completion.chunk"},
                "choices": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["index", "delta"],
                        "properties": {
                            "index": {"type": "integer"},
                            "delta": {
                                "type": "object",
                                "properties": {
                                    "role": {"type": "string"},
                                    "content": {"type": ["string", "null"]},
                                },
                            },
                            "finish_reason": finish_reason,
                            "logprobs": logprobs,
                        },
                    },
                },
                "usage": {
                    "anyOf": [_schema("Usage"), {"type": "null"}],
                    "description": "Only in the last chunk, with `stream_options.include_usage`.",
                },
            },
        },
        "Completion": {
            "type": "object",
            "required": [*required, "usage"],
            "properties": {
                **head,
                "object": {"const": "text_completion"},
                "choices": {"type": "array", "items": _schema("CompletionChoice")},
                "usage": _schema("Usage"),
            },
        },
        "CompletionChunk": {
            "type": "object",
            "required": required,
            "properties": {
                **head,
                "object": {"const": "text_completion"},
                "choices": {"type": "array", "items": _schema("CompletionChoice")},
                "usage": {"anyOf": [_schema("Usage"), {"type": "null"}]},
            },
        },
        "CompletionChoice": {
            "type": "object",
            "required": ["index", "text"],
            "properties": {
                "index": {"type": "integer"},
                "text": {"type": "string"},
                "finish_reason": finish_reason,
                "logprobs": logprobs,
            },
        },
    }


def _gateway_schemas() -> dict[str, Any]:
    """Bodies Kodify builds itself: closed, since nothing else can add to them."""
    return {
        "ErrorResponse": {
            "type": "object",
            "description": "OpenAI's error body, used for every error status.",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["message", "type", "param", "code"],
                    "properties": {
                        "message": {"type": "string"},
                        "type": {"type": "string", "examples": ["invalid_request_error"]},
                        "param": {"type": ["string", "null"], "examples": ["model"]},
                        "code": {"type": ["string", "null"], "examples": ["model_not_found"]},
                    },
                    "additionalProperties": False,
                }
            },
            "additionalProperties": False,
        },
        "StreamError": {
            "type": "object",
            "description": "An error that ended a stream after its headers were sent: "
            "Kodify's ErrorResponse, or the upstream's error event passed through as is.",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["message"],
                    "properties": {"message": {"type": "string"}},
                }
            },
        },
        "ModelList": {
            "type": "object",
            "required": ["object", "data"],
            "properties": {
                "object": {"const": "list"},
                "data": {"type": "array", "items": _schema("Model")},
            },
            "additionalProperties": False,
        },
        "Model": {
            "type": "object",
            "required": ["id", "object", "created", "owned_by"],
            "properties": {
                "id": {"type": "string"},
                "object": {"const": "model"},
                "created": {"type": "integer"},
                "owned_by": {"type": "string"},
                "max_model_len": {
                    "type": "integer",
                    "description": "Context length, when the upstream (vLLM) reports it.",
                },
            },
            "additionalProperties": False,
        },
        "Health": {
            "type": "object",
            "required": [
                "status",
                "version",
                "auth_mode",
                "upstreams_healthy",
                "upstreams_total",
                "upstreams",
            ],
            "properties": {
                "status": {"const": "ok"},
                "version": {"type": "string", "description": "Kodify's version."},
                "auth_mode": {"enum": ["dummy", "one-token", "per-user"]},
                "upstreams_healthy": {"type": "integer", "minimum": 0},
                "upstreams_total": {"type": "integer", "minimum": 0},
                "upstreams": {"type": "array", "items": _schema("UpstreamState")},
                "worker": {
                    "type": "integer",
                    "description": "Process id of the worker that answered: each worker "
                    "keeps its own view of the upstreams.",
                },
                "console_version": {
                    "type": "string",
                    "description": "Stamp of the console's upstreams and settings this worker "
                    "has applied; it changes with every change in the console (empty before "
                    "the first reading).",
                },
            },
            "additionalProperties": False,
        },
        "TabbyCompletion": {
            "type": "object",
            "required": ["id", "choices"],
            "properties": {
                "id": {"type": "string", "pattern": "^cmpl-"},
                "choices": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["index", "text"],
                        "properties": {
                            "index": {"type": "integer", "minimum": 0},
                            "text": {
                                "type": "string",
                                "description": "To insert at the cursor; empty when the "
                                "model had nothing useful.",
                            },
                        },
                    },
                },
                "debug_data": {
                    "type": "object",
                    "description": "With `debug_options`: the prompt and the snippets used.",
                    "properties": {
                        "prompt": {"type": "string"},
                        "snippets": {"type": "array", "items": {"type": "object"}},
                    },
                },
            },
            "additionalProperties": False,
        },
        "TabbyHealth": {
            "type": "object",
            "description": "Tabby's health shape; Tabby clients refuse to complete when "
            "`model` or `device` is empty.",
            "required": [
                "model",
                "device",
                "arch",
                "cpu_info",
                "cpu_count",
                "cuda_devices",
                "version",
            ],
            "properties": {
                "model": {
                    "type": "string",
                    "minLength": 1,
                    "description": "The model Tabby-shape completions go to (`tabby.model_name`, "
                    "else the first upstream's model; `unavailable` while none is known).",
                },
                "chat_model": {"type": ["string", "null"]},
                "device": {"type": "string", "minLength": 1},
                "arch": {"type": "string"},
                "cpu_info": {"type": "string"},
                "cpu_count": {"type": "integer", "minimum": 1},
                "cuda_devices": {"type": "array", "items": {"type": "string"}},
                "version": {
                    "type": "object",
                    "required": ["build_date", "build_timestamp", "git_sha", "git_describe"],
                    "properties": {
                        "build_date": {"type": "string"},
                        "build_timestamp": {"type": "string"},
                        "git_sha": {"type": "string"},
                        "git_describe": {"type": "string"},
                    },
                },
            },
        },
        "ServerSetting": {
            "type": "object",
            "required": ["disable_client_side_telemetry"],
            "properties": {"disable_client_side_telemetry": {"type": "boolean"}},
        },
        "UpstreamState": {
            "type": "object",
            "required": [
                "url",
                "name",
                "healthy",
                "enabled",
                "checked",
                "last_check",
                "error",
                "models",
                "outstanding",
                "source",
            ],
            "properties": {
                "url": {"type": "string", "description": "Without any credentials."},
                "name": {"type": ["string", "null"]},
                "healthy": {"type": "boolean"},
                "enabled": {"type": "boolean"},
                "checked": {
                    "type": "boolean",
                    "description": "False until the first health check has finished.",
                },
                "last_check": {"type": ["string", "null"], "format": "date-time"},
                "error": {"type": ["string", "null"], "description": "Why it is down."},
                "models": {"type": "array", "items": {"type": "string"}},
                "outstanding": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "Requests in flight to it from this worker process.",
                },
                "source": {
                    "type": "string",
                    "description": "Where it is configured: a config.yml path, "
                    "KODIFY_UPSTREAMS, or the console.",
                },
            },
            "additionalProperties": False,
        },
    }


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
        "state. Never needs a token.",
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
        "/v1/events": {
            "post": {
                "tags": ["tabby"],
                "operationId": "logEvent",
                "summary": "A completion was shown, accepted or dismissed (Tabby)",
                "description": "Answered at once with an empty 200; the event is stored "
                "with the journal (when it is on) for acceptance statistics.",
                "parameters": [
                    {
                        "name": "select_kind",
                        "in": "query",
                        "required": False,
                        "description": "`line` when only a line of the completion was taken.",
                        "schema": {"type": "string"},
                    }
                ],
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
            {"name": "models", "description": "What the upstreams serve."},
            {"name": "health", "description": "For monitoring and load balancers."},
            {"name": "tabby", "description": "What Tabby's IDE plugins call besides completions."},
            {"name": "meta", "description": "This description."},
        ],
        "security": [{"bearerAuth": []}],
        "paths": _paths(),
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
                    "description": "This request's id, as the server log names it.",
                    "required": True,
                    "schema": {"type": "string"},
                }
            },
            "schemas": {**_request_schemas(max_n), **_answer_schemas(), **_gateway_schemas()},
            "responses": _responses(),
        },
    }
