"""OpenAI-shaped errors: ``{"error": {"message", "type", "param", "code"}}``."""

from __future__ import annotations

from typing import Any

import orjson

_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    408: "timeout_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


class OpenAIError(Exception):
    """An error answer for the client. ``str(exc)`` is the message it will read."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        type: str | None = None,
        headers: tuple[tuple[bytes, bytes], ...] = (),
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.type = type or _TYPES.get(status, "server_error" if status >= 500 else "api_error")
        self.headers = headers

    def as_dict(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    def body(self) -> bytes:
        return orjson.dumps(self.as_dict())


def bad_request(message: str, *, param: str | None = None, code: str | None = None) -> OpenAIError:
    return OpenAIError(400, message, param=param, code=code or "invalid_value")


def from_upstream(status: int, body: bytes, upstream: str) -> OpenAIError:
    """Turn an upstream's error answer (any of vLLM's shapes) into an OpenAI error.

    The upstream's status is kept, except for 401/403: those mean the upstream refused
    *Kodify's* key, which is an operator's problem, not the caller's, so the caller gets 502.
    """
    message, type_, param, code = _parse_upstream_error(body)
    if status in (401, 403):
        return OpenAIError(
            502,
            f"The upstream {upstream} refused Kodify's API key ({status}: {message}). "
            "An administrator must set its api_key in config.yml, "
            "KODIFY_UPSTREAM_API_KEY or VLLM_API_KEY.",
            code="upstream_auth_failed",
        )
    if not message:
        message = f"The upstream answered HTTP {status}."
    return OpenAIError(status, message, type=type_, param=param, code=code)


def _parse_upstream_error(
    body: bytes,
) -> tuple[str, str | None, str | None, str | None]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        text = body.decode("utf-8", "replace").strip()
        return text[:2000], None, None, None
    if isinstance(data, dict):
        inner = data.get("error", data)
        if isinstance(inner, str):  # {"error": "Unauthorized"}
            return inner, None, None, None
        if isinstance(inner, dict):
            message = inner.get("message", inner.get("detail", ""))
            if not isinstance(message, str):
                message = orjson.dumps(message).decode()
            return (
                message,
                _str_or_none(inner.get("type")),
                _str_or_none(inner.get("param")),
                _str_or_none(inner.get("code")),
            )
    return orjson.dumps(data).decode()[:2000], None, None, None


def _str_or_none(value: Any) -> str | None:
    if value is None:
        return None
    return str(value)
