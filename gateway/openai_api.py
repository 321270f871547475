"""Parsing and checking OpenAI request bodies before they reach an upstream.

Only the fields the gateway must understand are checked (model, stream, n and the
main inputs); everything else passes through untouched, so new OpenAI or vLLM options
work without a Kodify release.  The original bytes are forwarded unless the gateway had
to change the body (a missing ``model``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.errors import OpenAIError, bad_request


class Endpoint(enum.StrEnum):
    CHAT = "chat"
    COMPLETIONS = "completions"


@dataclass(slots=True)
class ProxyRequest:
    """A checked request, ready to forward."""

    endpoint: Endpoint
    body: dict[str, Any]
    raw: bytes | None  # the client's bytes, when they can be forwarded unchanged
    model: str | None
    stream: bool

    def upstream_body(self) -> bytes:
        if self.raw is None:
            self.raw = orjson.dumps(self.body)
        return self.raw

    def ask_for_usage(self) -> bool:
        """Have a stream end with a usage event (for the journal's token counts).

        Returns True when the client had not asked for it itself: the gateway must
        then keep that event from the client, which would not expect it.
        """
        options = self.body.get("stream_options") or {}
        if not self.stream or options.get("include_usage") is True:
            return False
        self.body["stream_options"] = {**options, "include_usage": True}
        self.raw = None
        return True

    def default_max_tokens(self, limit: int) -> None:
        """The console's default ``max_tokens`` for a request that sets no limit itself."""
        body = self.body
        if body.get("max_tokens") is None and body.get("max_completion_tokens") is None:
            body["max_tokens"] = limit
            self.raw = None

    def set_model(self, model: str) -> None:
        if self.model != model:
            self.body["model"] = model
            self.model = model
            self.raw = None


def decode_json(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        raise bad_request("The request body is empty; send a JSON object.", code="invalid_json")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        # orjson refuses nesting deeper than 1024 levels with the same error,
        # so a hostile body never reaches a RecursionError.
        raise bad_request(
            f"The request body is not valid JSON: {exc}.", code="invalid_json"
        ) from None
    if not isinstance(data, dict):
        raise bad_request("The request body must be a JSON object.", code="invalid_json")
    return data


def parse_request(endpoint: Endpoint, raw: bytes, *, max_n: int) -> ProxyRequest:
    return check_request(endpoint, decode_json(raw), raw, max_n=max_n)


def is_tabby_body(body: dict[str, Any]) -> bool:
    """Tabby clients send ``segments`` (prefix/suffix) where OpenAI ones send ``prompt``."""
    return "segments" in body and "prompt" not in body


def check_request(
    endpoint: Endpoint, body: dict[str, Any], raw: bytes | None, *, max_n: int
) -> ProxyRequest:
    model = _optional(body, "model", str)
    if model is not None and not model.strip():
        raise bad_request("'model' must not be empty.", param="model")
    stream = _optional(body, "stream", bool) or False
    _check_n(body, max_n)
    _optional_number(body, "temperature", 0.0, 2.0)
    _optional_number(body, "top_p", 0.0, 1.0)
    _optional_int(body, "max_tokens", 0)
    _optional_int(body, "max_completion_tokens", 0)
    _optional(body, "stream_options", dict)
    if endpoint is Endpoint.CHAT:
        _check_messages(body)
    else:
        _check_prompt(body)
        _optional(body, "suffix", str)
    return ProxyRequest(endpoint=endpoint, body=body, raw=raw, model=model, stream=stream)


_TYPE_NAMES = {str: "a string", bool: "a boolean", dict: "an object", list: "an array"}


def _optional(body: dict[str, Any], key: str, kind: type) -> Any:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise bad_request(f"'{key}' must be {_TYPE_NAMES[kind]}.", param=key, code="invalid_type")
    return value


def _optional_int(body: dict[str, Any], key: str, minimum: int) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # 2.0 is an integer to JSON Schema and to vLLM
    if not isinstance(value, int) or isinstance(value, bool):
        raise bad_request(f"'{key}' must be an integer.", param=key, code="invalid_type")
    if value < minimum:
        raise bad_request(f"'{key}' must be at least {minimum}.", param=key)
    return value


def _optional_number(body: dict[str, Any], key: str, low: float, high: float) -> None:
    value = body.get(key)
    if value is None:
        return
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise bad_request(f"'{key}' must be a number.", param=key, code="invalid_type")
    if not low <= value <= high:
        raise bad_request(f"'{key}' must be between {low:g} and {high:g}.", param=key)


def _check_n(body: dict[str, Any], max_n: int) -> None:
    for key in ("n", "best_of"):
        value = _optional_int(body, key, 1)
        if value is not None and value > max_n:
            raise OpenAIError(
                400,
                f"'{key}' is {value}, above this server's limit of {max_n} (MAX_N).",
                param=key,
                code="n_too_large",
            )


def _check_messages(body: dict[str, Any]) -> None:
    messages = body.get("messages")
    if messages is None:
        raise bad_request(
            '\'messages\' is required: a list of {"role", "content"} objects.',
            param="messages",
            code="missing_required_parameter",
        )
    if not isinstance(messages, list) or not messages:
        raise bad_request("'messages' must be a non-empty array.", param="messages")
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            raise bad_request(f"'{where}' must be an object.", param=where, code="invalid_type")
        role = message.get("role")
        if not isinstance(role, str) or not role:
            raise bad_request(f"'{where}.role' must be a non-empty string.", param=where)
        content = message.get("content")
        if content is not None and not isinstance(content, str | list):
            raise bad_request(
                f"'{where}.content' must be a string or an array of content parts.",
                param=where,
                code="invalid_type",
            )


def _check_prompt(body: dict[str, Any]) -> None:
    prompt = body.get("prompt")
    if prompt is None:
        raise bad_request(
            "'prompt' is required: a string, an array of strings or of token ids.",
            param="prompt",
            code="missing_required_parameter",
        )
    if isinstance(prompt, str):
        return
    if isinstance(prompt, list) and prompt and _all_of(prompt, (str,), (int,), (list,)):
        if isinstance(prompt[0], list) and not all(
            p and all(_is_int(t) for t in p) for p in prompt
        ):
            raise bad_request("'prompt' arrays of token ids must hold integers.", param="prompt")
        return
    raise bad_request(
        "'prompt' must be a string, a non-empty array of strings, or token ids.",
        param="prompt",
        code="invalid_type",
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _all_of(items: list[Any], *kinds: tuple[type, ...]) -> bool:
    for kind in kinds:
        if all(isinstance(item, kind) and not isinstance(item, bool) for item in items):
            return True
    return False
