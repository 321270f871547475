"""The answer schemas of the OpenAPI document (gateway/openapi.py), written by hand.

The gateway does not check answers: it passes vLLM's through and builds a few of its own.
The schemas of vLLM's answers require what the gateway or vLLM always sends and allow
more, since vLLM adds fields between releases; those of the bodies Kodify builds itself
are closed.  gateway/tests/test_openapi.py checks them against real answers.
"""

from __future__ import annotations

from typing import Any


def _schema(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(kind: str, **rest: Any) -> dict[str, Any]:
    return {"type": [kind, "null"], **rest}


def answer_schemas() -> dict[str, Any]:
    """vLLM's answers, passed through: open, since vLLM adds fields between releases."""
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
        "TokenizeResponse": {
            "type": "object",
            "required": ["count", "max_model_len", "tokens"],
            "properties": {
                "count": {"type": "integer", "minimum": 0},
                "max_model_len": {"type": "integer", "description": "The model's context."},
                "tokens": {"type": "array", "items": {"type": "integer"}},
                "token_strs": {
                    "type": ["array", "null"],
                    "items": {"type": "string"},
                    "description": "Each token's text, with `return_token_strs`.",
                },
            },
        },
        "DetokenizeResponse": {
            "type": "object",
            "required": ["prompt"],
            "properties": {"prompt": {"type": "string"}},
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


def gateway_schemas() -> dict[str, Any]:
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
                "root": {"type": ["string", "null"], "description": "The weights' name."},
                "parent": {
                    "type": ["string", "null"],
                    "description": "For an action model: the model it runs on.",
                },
                "kodify_action": {
                    "enum": ["docs", "fix", "tests", "explain"],
                    "description": "An action model (`<model>:<action>`): a chat request to "
                    "it gets the server's template for the action applied to its last "
                    "message (KODIFY_ACTION_MODELS).",
                },
                "description": {"type": "string"},
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
                "status": {
                    "enum": ["ok", "no_upstreams"],
                    "description": "no_upstreams: no upstream is configured or enabled, so "
                    "every API request gets 503 (the server itself is up).",
                },
                "detail": {
                    "type": "string",
                    "description": "What to do, when the status is not ok.",
                },
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
                "device": {
                    "type": "string",
                    "minLength": 1,
                    "description": "What the upstreams serving `model` run on, as their "
                    "`GET /version` says (vLLM's builds for anything but CUDA's main version "
                    "name it: `cpu`, `cuda`, `rocm`…); several are joined with `, `; "
                    "`unknown` when none says.",
                    "examples": ["cuda", "cpu", "unknown"],
                },
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
                "name",
                "healthy",
                "enabled",
                "checked",
                "last_check",
                "models",
                "outstanding",
                "source",
            ],
            "properties": {
                "url": {
                    "type": "string",
                    "description": "Without any credentials. Operators only (a client on "
                    "this machine, or one sending KODIFY_METRICS_TOKEN), as is 'error'.",
                },
                "name": {"type": ["string", "null"]},
                "healthy": {"type": "boolean"},
                "enabled": {"type": "boolean"},
                "checked": {
                    "type": "boolean",
                    "description": "False until the first health check has finished.",
                },
                "last_check": {"type": ["string", "null"], "format": "date-time"},
                "error": {
                    "type": ["string", "null"],
                    "description": "Why it is down (operators only).",
                },
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
