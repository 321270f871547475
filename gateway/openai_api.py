"""Parsing and checking OpenAI request bodies before they reach an upstream.

Only the fields the gateway must understand or guard are checked (model, stream, n, the
main inputs and the sampling numbers), against the Structs of
gateway/api_schema/requests.py that the OpenAPI document is generated from; everything
else passes through untouched, so new OpenAI or vLLM options work without a Kodify
release.  The original bytes are forwarded unless the gateway had to change the body
(a missing ``model``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.api_schema.requests import (
    ChatCompletionRequest,
    CompletionRequest,
    DetokenizeRequest,
    TokenizeRequest,
    check_max_n,
    check_prompt,
    check_tokenize,
)
from gateway.api_schema.validation import convert
from gateway.errors import bad_request


class Endpoint(enum.StrEnum):
    CHAT = "chat"
    COMPLETIONS = "completions"
    TOKENIZE = "tokenize"  # vLLM's tokenizer: nothing is generated
    DETOKENIZE = "detokenize"


GENERATION = frozenset({Endpoint.CHAT, Endpoint.COMPLETIONS})


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
        if self.endpoint not in GENERATION:
            return
        body = self.body
        if body.get("max_tokens") is None and body.get("max_completion_tokens") is None:
            body["max_tokens"] = limit
            self.raw = None

    def set_model(self, model: str) -> None:
        if self.model != model:
            self.body["model"] = model
            self.model = model
            self.raw = None

    @property
    def generates(self) -> bool:
        """A generation (chat, completion), which vLLM schedules; not the tokenizer's."""
        return self.endpoint in GENERATION

    def asked_priority(self) -> int | None:
        """The client's own ``priority`` (its Struct checked it is whole), or None."""
        value = self.body.get("priority")
        return None if value is None else int(value)

    def set_priority(self, priority: int | None) -> None:
        """The ``priority`` sent upstream (gateway/scheduling.py); None: no such field."""
        body = self.body
        if priority is None:
            if "priority" in body:
                del body["priority"]
                self.raw = None
        elif type(body.get("priority")) is not int or body["priority"] != priority:
            body["priority"] = priority
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
    """Check ``body`` against its endpoint's Struct (gateway/api_schema/requests.py)."""
    if endpoint is Endpoint.TOKENIZE:
        tokenize = convert(body, TokenizeRequest)
        check_tokenize(tokenize)
        return ProxyRequest(endpoint, body, raw, model=tokenize.model, stream=False)
    if endpoint is Endpoint.DETOKENIZE:
        detokenize = convert(body, DetokenizeRequest)
        return ProxyRequest(endpoint, body, raw, model=detokenize.model, stream=False)
    checked: ChatCompletionRequest | CompletionRequest
    if endpoint is Endpoint.CHAT:
        checked = convert(body, ChatCompletionRequest)
    else:
        checked = convert(body, CompletionRequest)
        check_prompt(checked)
    check_max_n(checked, max_n)
    return ProxyRequest(
        endpoint=endpoint,
        body=body,
        raw=raw,
        model=checked.model,
        stream=checked.stream or False,
    )
