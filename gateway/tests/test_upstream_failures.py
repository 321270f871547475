"""Each way a request fails between Kodify and its upstreams, and what the client reads.

Table tests of ``gateway.upstream_failures``, the one module that decides it: status,
code, message, whether another replica may be tried (``UpstreamUnavailable``), why the
replica rests, and the failure's name in the metrics.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp.client_reqrep import ConnectionKey

from gateway import upstream_failures as failures
from gateway.config_file import UpstreamSpec
from gateway.errors import OpenAIError
from gateway.upstreams import UpstreamTable

pytestmark = pytest.mark.smoke

KEY = ConnectionKey("10.0.0.9", 8000, False, True, None, None, None, "10.0.0.9")


def header(error: OpenAIError, name: bytes) -> bytes | None:
    return dict(error.headers).get(name)


@pytest.mark.parametrize(
    ("exc", "status", "code", "reason", "message", "rest"),
    [
        (
            aiohttp.ConnectionTimeoutError(),
            504,
            "upstream_timeout",
            "timeout",
            "The upstream could not connect within 3 s.",
            "could not connect within 3 s",
        ),
        (
            aiohttp.ServerTimeoutError(),
            504,
            "upstream_timeout",
            "timeout",
            "The upstream sent no answer within 40 s (KODIFY_UPSTREAM_FIRST_BYTE_TIMEOUT).",
            "no answer within 40 s",
        ),
        (
            aiohttp.ClientConnectorError(KEY, OSError(111, "Connection refused")),
            503,
            "upstream_unavailable",
            "unreachable",
            "The upstream is unreachable (connection refused or host down).",
            "connection failed: Connection refused",
        ),
        (
            aiohttp.ServerDisconnectedError(),
            502,
            "upstream_error",
            "connection_broken",
            "The upstream broke the connection before answering (ServerDisconnectedError).",
            "broke the connection (ServerDisconnectedError)",
        ),
    ],
)
def test_no_answer_may_go_to_another_replica(
    exc: aiohttp.ClientError, status: int, code: str, reason: str, message: str, rest: str
) -> None:
    failed = failures.not_connected(exc, connect_timeout=3, first_byte_timeout=40)
    error = failed.error
    assert isinstance(error, failures.UpstreamUnavailable)
    assert (error.status, error.code, error.reason, error.message) == (
        status,
        code,
        reason,
        message,
    )
    assert failed.rest_because == rest
    assert error.as_dict()["error"]["type"] == "server_error"


def test_a_refused_connection_tells_the_client_when_to_come_back() -> None:
    refused = aiohttp.ClientConnectorError(KEY, OSError(111, "Connection refused"))
    error = failures.not_connected(refused, connect_timeout=3, first_byte_timeout=40).error
    assert header(error, b"retry-after") == b"2"


VLLM_500 = orjson.dumps(
    {"error": {"message": "CUDA out of memory", "type": "InternalServerError", "code": 500}}
)


@pytest.mark.parametrize(
    ("status", "body", "message", "code", "type_"),
    [
        (500, VLLM_500, "CUDA out of memory", "500", "InternalServerError"),
        (503, b"Service Unavailable", "Service Unavailable", None, "server_error"),
        (502, b"", "The upstream answered HTTP 502.", None, "server_error"),
    ],
)
def test_a_server_error_before_the_answer_rests_the_replica_and_may_be_retried(
    status: int, body: bytes, message: str, code: str | None, type_: str
) -> None:
    failed = failures.server_error(status, body)
    error = failed.error
    assert isinstance(error, failures.UpstreamUnavailable)
    assert (error.status, error.message, error.code, error.type) == (status, message, code, type_)
    assert error.reason == f"http_{status}"
    assert failed.rest_because == f"answered HTTP {status}"


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        # vLLM's own shape passes through: the client's mistake, told in vLLM's words.
        (
            400,
            {
                "error": {
                    "message": "prompt is too long",
                    "type": "BadRequestError",
                    "param": "prompt",
                    "code": 400,
                }
            },
            (400, "prompt is too long", "BadRequestError", "prompt", "400"),
        ),
        (
            404,
            {"error": {"message": "The model `x` does not exist.", "type": "NotFoundError"}},
            (404, "The model `x` does not exist.", "NotFoundError", None, None),
        ),
        # An older server's {"detail": …}, and detail that is not text.
        (
            422,
            {"detail": "Unprocessable"},
            (422, "Unprocessable", "invalid_request_error", None, None),
        ),
        (
            422,
            {"detail": [{"loc": ["body"]}]},
            (422, '[{"loc":["body"]}]', "invalid_request_error", None, None),
        ),
        (400, {"error": "plain words"}, (400, "plain words", "invalid_request_error", None, None)),
        (400, [1, 2], (400, "[1,2]", "invalid_request_error", None, None)),
        # Not JSON at all, or nothing: the status speaks.
        (413, b"too big\n", (413, "too big", "invalid_request_error", None, None)),
        (404, b"", (404, "The upstream answered HTTP 404.", "invalid_request_error", None, None)),
    ],
)
def test_an_upstream_error_answer_becomes_the_clients(
    status: int, body: Any, expected: tuple[Any, ...]
) -> None:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    error = failures.error_answer(status, raw)
    assert not isinstance(error, failures.UpstreamUnavailable)
    assert (error.status, error.message, error.type, error.param, error.code) == expected


@pytest.mark.parametrize("status", [401, 403])
def test_an_upstream_refusing_kodifys_key_is_the_operators_problem(status: int) -> None:
    error = failures.error_answer(status, b'{"error": "Unauthorized"}')
    assert (error.status, error.code) == (502, "upstream_auth_failed")
    assert f"({status}: Unauthorized)" in error.message
    assert "KODIFY_UPSTREAM_API_KEY" in error.message


@pytest.mark.parametrize(
    ("exc", "status"),
    [(TimeoutError(), 504), (aiohttp.ClientPayloadError("cut"), 502)],
)
def test_a_whole_answer_that_stops_coming(exc: BaseException, status: int) -> None:
    error = failures.broken_answer(exc)
    assert (error.status, error.code) == (status, "upstream_error")
    assert error.message == f"The upstream broke off its answer ({type(exc).__name__})."


@pytest.mark.parametrize(
    ("exc", "status", "code", "reason"),
    [
        (
            TimeoutError(),
            504,
            "upstream_timeout",
            "sent nothing for 20 s (KODIFY_UPSTREAM_IDLE_TIMEOUT)",
        ),
        (
            aiohttp.ClientPayloadError("cut"),
            502,
            "upstream_error",
            "broke off the stream (ClientPayloadError)",
        ),
    ],
)
def test_a_stream_that_stops_mid_way(
    exc: BaseException, status: int, code: str, reason: str
) -> None:
    error, why = failures.broken_stream(exc, idle_timeout=20)
    assert (error.status, error.code, why) == (status, code, reason)
    assert error.message == f"The upstream {reason}."


# -- no replica can take the request -------------------------------------------------------


A, B = "http://a:8000", "http://b:8000"


def table(*specs: UpstreamSpec) -> UpstreamTable:
    return UpstreamTable(list(specs), default_api_key=None, refresh_interval=30)


def serving(upstreams: UpstreamTable, url: str, *models: str, healthy: bool = True) -> None:
    upstream = next(u for u in upstreams.upstreams if u.url == url)
    upstream.models = {name: {"id": name, "object": "model"} for name in models}
    if healthy:
        upstream.mark_up()
    else:
        upstream.mark_down("connection refused")
    upstreams._reindex()


def test_no_upstream_at_all() -> None:
    error = failures.unroutable(table(), "coder")
    assert (error.status, error.code) == (503, "no_upstream")
    assert header(error, b"retry-after")


def test_no_upstream_has_answered_yet() -> None:
    error = failures.unroutable(table(UpstreamSpec(url=A)), None)
    assert (error.status, error.code) == (503, "upstream_unavailable")
    assert error.message == "No model is available yet: no upstream has answered (not checked yet)."


def test_every_replica_of_the_model_is_down() -> None:
    upstreams = table(UpstreamSpec(url=A), UpstreamSpec(url=B))
    serving(upstreams, A, "coder", healthy=False)
    serving(upstreams, B, "coder", healthy=False)
    error = failures.unroutable(upstreams, "coder")
    assert (error.status, error.code) == (503, "upstream_unavailable")
    assert error.message == (
        "Every upstream serving model 'coder' is down (connection refused (2 replicas))."
    )
    assert int(header(error, b"retry-after") or 0) >= 1


def test_every_replica_of_the_model_is_at_its_limit() -> None:
    upstreams = table(UpstreamSpec(url=A, max_concurrent=2))
    serving(upstreams, A, "coder")
    error = failures.unroutable(upstreams, "coder")
    assert (error.status, error.code, header(error, b"retry-after")) == (503, "upstream_busy", b"1")


def test_a_model_nobody_reachable_serves_while_some_cannot_be_asked() -> None:
    upstreams = table(UpstreamSpec(url=A), UpstreamSpec(url=B))
    serving(upstreams, A, "coder")
    serving(upstreams, B, healthy=False)
    error = failures.unroutable(upstreams, "other")
    assert (error.status, error.code) == (503, "upstream_unavailable")
    assert error.message.endswith("some upstreams cannot be asked (connection refused).")


def test_a_model_that_does_not_exist() -> None:
    upstreams = table(UpstreamSpec(url=A), UpstreamSpec(url=B))
    serving(upstreams, A, "coder")
    serving(upstreams, B, "chat")
    error = failures.unroutable(upstreams, "other")
    assert (error.status, error.code, error.param) == (404, "model_not_found", "model")
    assert error.message.endswith("Available models: coder, chat.")


def test_no_client_reads_where_the_upstreams_are() -> None:
    upstreams = table(
        UpstreamSpec(url="http://user:pw@10.1.2.3:8000"), UpstreamSpec(url="http://gpu-7:8000")
    )
    serving(upstreams, "http://user:pw@10.1.2.3:8000", "coder", healthy=False)
    serving(upstreams, "http://gpu-7:8000", "coder", healthy=False)
    upstreams.upstreams[0].last_error = "health check: GET http://10.1.2.3:8000/health timed out"
    upstreams.upstreams[1].last_error = "connection failed: Connect call failed ('gpu-7', 8000)"
    message = failures.unroutable(upstreams, "coder").message
    assert message == (
        "Every upstream serving model 'coder' is down (health check: GET <upstream> timed "
        "out; connection failed: Connect call failed <upstream>)."
    )


def test_an_answered_server_error_only_suspects_the_replica() -> None:
    error = failures.server_error(500, VLLM_500).error
    assert error.answered_because == "answered HTTP 500"
    refused = aiohttp.ClientConnectorError(KEY, OSError(111, "Connection refused"))
    assert (
        failures.not_connected(
            refused, connect_timeout=3, first_byte_timeout=40
        ).error.answered_because
        == ""
    )
