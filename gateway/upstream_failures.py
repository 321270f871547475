"""Every way a request can fail between Kodify and its upstreams, and what the client
reads then: the one place that turns a failure into an OpenAI error.

Each function answers one kind of failure with the client's error and, where the
replica is to rest (``Upstream.mark_down``), the reason kept for the console and the
logs.  Clients read the model and the reason, never an upstream's address: that is the
operator's business, and the callers log it.  A failure before any byte reached the
client is an :class:`UpstreamUnavailable`: the request may go to another replica.
``reason`` names the failure for the metrics.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp
import orjson

from gateway.errors import OpenAIError

if TYPE_CHECKING:
    from gateway.upstreams import Upstream, UpstreamTable

# An address as errors quote it: a URL, host:port, or Python's ('host', port).
_ADDRESS = re.compile(
    r"\b[a-z][a-z0-9+.-]*://\S+"
    r"|\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b"
    r"|\(\s*'[^']*'\s*,\s*\d+\s*(?:,[^)]*)?\)"
)

# How much of an upstream's error answer is read to tell the client what went wrong.
MAX_ERROR_BODY = 64 * 1024


class UpstreamUnavailable(OpenAIError):
    """No answer could be had from this upstream before any byte reached the client.

    Safe to retry on another replica.  ``reason``: the failure's name in the metrics.
    ``answered_because``: set when the replica did answer, with an error status; why it
    would rest, once the request is cleared of causing the error.
    """

    reason: str = "other"
    answered_because: str = ""


@dataclass(frozen=True)
class Failed:
    """A failure before the answer: the client's error, and why the replica rests."""

    error: UpstreamUnavailable
    rest_because: str


def _unavailable(
    status: int,
    message: str,
    code: str | None,
    reason: str,
    *,
    headers: tuple[tuple[bytes, bytes], ...] = (),
    param: str | None = None,
    type: str | None = None,
) -> UpstreamUnavailable:
    error = UpstreamUnavailable(status, message, code=code, headers=headers, param=param, type=type)
    error.reason = reason
    return error


def not_connected(
    exc: aiohttp.ClientError, *, connect_timeout: float, first_byte_timeout: float
) -> Failed:
    """The request could not be sent, or its answer's headers never came."""
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        why = f"could not connect within {connect_timeout:g} s"
        return Failed(_unavailable(504, f"The upstream {why}.", "upstream_timeout", "timeout"), why)
    if isinstance(exc, aiohttp.ServerTimeoutError):
        return Failed(
            _unavailable(
                504,
                f"The upstream sent no answer within {first_byte_timeout:g} s "
                "(KODIFY_UPSTREAM_FIRST_BYTE_TIMEOUT).",
                "upstream_timeout",
                "timeout",
            ),
            f"no answer within {first_byte_timeout:g} s",
        )
    if isinstance(exc, aiohttp.ClientConnectorError):
        return Failed(
            _unavailable(
                503,
                "The upstream is unreachable (connection refused or host down).",
                "upstream_unavailable",
                "unreachable",
                headers=((b"retry-after", b"2"),),
            ),
            f"connection failed: {exc.os_error.strerror or exc}",
        )
    name = type(exc).__name__
    return Failed(
        _unavailable(
            502,
            f"The upstream broke the connection before answering ({name}).",
            "upstream_error",
            "connection_broken",
        ),
        f"broke the connection ({name})",
    )


def server_error(status: int, body: bytes) -> Failed:
    """A 5xx before the answer: the replica is alive but failing; another may answer.

    Whether it rests is for the caller to decide: the request itself may be what made
    it fail (see ``gateway.pipeline``).
    """
    error = error_answer(status, body)
    unavailable = _unavailable(
        error.status,
        error.message,
        error.code,
        f"http_{status}",
        headers=error.headers,
        param=error.param,
        type=error.type,
    )
    unavailable.answered_because = f"answered HTTP {status}"
    return Failed(unavailable, unavailable.answered_because)


def error_answer(status: int, body: bytes) -> OpenAIError:
    """An upstream's error answer (any of vLLM's shapes) as the client's error.

    The upstream's status is kept, except for 401/403: those mean the upstream refused
    *Kodify's* key, which is an operator's problem, not the caller's, so the caller gets 502.
    """
    message, type_, param, code = _parse_error(body)
    if status in (401, 403):
        return OpenAIError(
            502,
            f"The upstream refused Kodify's API key ({status}: {message}). "
            "An administrator must set its api_key in config.yml, "
            "KODIFY_UPSTREAM_API_KEY or VLLM_API_KEY.",
            code="upstream_auth_failed",
        )
    if not message:
        message = f"The upstream answered HTTP {status}."
    return OpenAIError(status, message, type=type_, param=param, code=code)


def broken_answer(exc: BaseException) -> OpenAIError:
    """A whole (non-streamed) answer that stopped coming."""
    timed_out = isinstance(exc, TimeoutError)
    return OpenAIError(
        504 if timed_out else 502,
        f"The upstream broke off its answer ({type(exc).__name__}).",
        code="upstream_error",
    )


def broken_stream(exc: BaseException, *, idle_timeout: float) -> tuple[OpenAIError, str]:
    """A stream that stopped mid-way: the error for the client's last event, and the
    reason for the journal and the log."""
    timed_out = isinstance(exc, TimeoutError)
    reason = (
        f"sent nothing for {idle_timeout:g} s (KODIFY_UPSTREAM_IDLE_TIMEOUT)"
        if timed_out
        else f"broke off the stream ({type(exc).__name__})"
    )
    error = OpenAIError(
        504 if timed_out else 502,
        f"The upstream {reason}.",
        code="upstream_timeout" if timed_out else "upstream_error",
    )
    return error, reason


def unroutable(table: UpstreamTable, model: str | None) -> OpenAIError:
    """Why no replica can take a request for ``model`` (None: the default model)."""
    retry = ((b"retry-after", str(table.retry_after(table.upstreams)).encode()),)
    if not table.upstreams:
        return OpenAIError(
            503,
            "No upstream is configured: add one to config.yml, KODIFY_UPSTREAMS or "
            "the console (Upstreams).",
            code="no_upstream",
            headers=retry,
        )
    name = model or table.default_model()
    if name is None:
        return OpenAIError(
            503,
            f"No model is available yet: no upstream has answered ({_summary(table.upstreams)}).",
            code="upstream_unavailable",
            headers=retry,
        )
    replicas = table.replicas(name)
    if replicas and any(u.healthy and u.spec.max_concurrent for u in replicas):
        return OpenAIError(
            503,
            f"Every upstream serving model '{name}' is at its limit of concurrent "
            "requests; try again in a moment.",
            code="upstream_busy",
            headers=((b"retry-after", b"1"),),
        )
    if replicas:
        return OpenAIError(
            503,
            f"Every upstream serving model '{name}' is down ({_summary(replicas)}).",
            code="upstream_unavailable",
            headers=((b"retry-after", str(table.retry_after(replicas)).encode()),),
        )
    unknown = [u for u in table.upstreams if u.enabled and not u.healthy]
    if unknown:
        return OpenAIError(
            503,
            f"Model '{name}' is not served by any reachable upstream, and some "
            f"upstreams cannot be asked ({_summary(unknown)}).",
            code="upstream_unavailable",
            headers=retry,
        )
    available = ", ".join(card["id"] for card in table.served_models()) or "none"
    return OpenAIError(
        404,
        f"The model '{name}' does not exist on this server. Available models: {available}.",
        param="model",
        code="model_not_found",
    )


def _summary(upstreams: Iterable[Upstream]) -> str:
    """Why the replicas are out, each reason once: no address (health checks may quote one)."""
    reasons = [
        _ADDRESS.sub("<upstream>", u.last_error or "not checked yet")
        for u in upstreams
        if u.enabled
    ]
    counted = Counter(reasons)
    parts = [reason if n == 1 else f"{reason} ({n} replicas)" for reason, n in counted.items()]
    return "; ".join(parts)


def _parse_error(body: bytes) -> tuple[str, str | None, str | None, str | None]:
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
    return None if value is None else str(value)
