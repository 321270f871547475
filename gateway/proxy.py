"""The relay: one request to an upstream, its answer passed back to the client.

Streams go through chunk by chunk as the upstream sends them, as bytes, never parsed
or re-encoded here.  When the client goes away the consumer cancels the relay task, and
the ``finally`` below closes the upstream connection at once, which makes vLLM abort the
generation.

Timeouts: ``sock_connect`` (KODIFY_UPSTREAM_CONNECT_TIMEOUT) and ``sock_read`` set on the
shared session bound the connection and the wait for the response headers
(KODIFY_UPSTREAM_FIRST_BYTE_TIMEOUT); once the headers are in, the read timeout of that
connection drops to KODIFY_UPSTREAM_IDLE_TIMEOUT, the silence allowed between chunks.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

import aiohttp
import orjson
from django.conf import settings

from gateway import upstream_failures as failures
from gateway.errors import OpenAIError
from gateway.http_client import upstream_session
from gateway.upstreams import Upstream
from journal.record import Record

logger = logging.getLogger("kodify.proxy")

SendHeaders = Callable[[int, list[tuple[bytes, bytes]]], Awaitable[None]]
SendBody = Callable[[bytes, bool], Awaitable[None]]

_JSON = b"application/json"
_SSE_HEADERS = [
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),  # tell nginx-style proxies not to buffer the stream
]


async def open_upstream(
    upstream: Upstream, path: str, body: bytes, request_id: str
) -> aiohttp.ClientResponse:
    """Send the request; return the response once its headers are in.

    ``request_id`` goes as the upstream's X-Request-Id (vLLM makes it the id of the
    request in its logs), so that one id follows the request from client to model.

    Whatever fails before that raises :class:`UpstreamUnavailable`: nothing reached the
    client yet, so the request may go to another replica.  No connection or no answer in
    time rests the replica at once; a 5xx answer is only a suspicion, since the request
    itself may have caused it (``answered_because``: the pipeline decides).
    """
    try:
        response = await upstream_session().post(
            upstream.endpoint(path),
            data=body,
            headers={
                "Content-Type": "application/json",
                "X-Request-Id": request_id,
                **upstream.auth_headers,
            },
        )
    except aiohttp.ClientError as exc:
        failed = failures.not_connected(
            exc,
            connect_timeout=settings.KODIFY_UPSTREAM_CONNECT_TIMEOUT,
            first_byte_timeout=settings.KODIFY_UPSTREAM_FIRST_BYTE_TIMEOUT,
        )
        upstream.mark_down(failed.rest_because)
        raise failed.error from None
    if response.status >= 500 and response.status != 501:
        try:
            error_body = await response.content.read(failures.MAX_ERROR_BODY)
        except (aiohttp.ClientError, TimeoutError):
            error_body = b""
        finally:
            response.close()
        failed = failures.server_error(response.status, error_body)
        logger.warning(
            "upstream %s answered HTTP %d: %.300s",
            upstream.display_url,
            response.status,
            failed.error.message,
        )
        raise failed.error
    if upstream.healthy is False:  # a resting replica that answers is back
        upstream.mark_up()
    return response


async def relay(
    response: aiohttp.ClientResponse,
    upstream: Upstream,
    send_headers: SendHeaders,
    send_body: SendBody,
    extra_headers: list[tuple[bytes, bytes]],
    record: Record,
    *,
    keep_chunks: bool = False,
    withhold_usage: bool = False,
) -> None:
    """Pass the upstream's answer to the client. Closes ``response`` in every case.

    What happens goes into ``record``: the first byte's time, an error that broke the
    answer off, and with ``keep_chunks`` the upstream's bytes as they came (for the
    journal).  ``withhold_usage``: Kodify itself asked the upstream for a usage event
    (``stream_options.include_usage``) that the client did not ask for; that one event
    is kept for the journal and not passed on.
    """
    completed = False
    try:
        if response.status >= 400:
            error_body = await response.content.read(failures.MAX_ERROR_BODY)
            raise _error_answer(response.status, error_body, upstream)
        _set_idle_timeout(response)
        content_type = response.headers.get("Content-Type", "application/json").encode()
        chunks = record.response_chunks if keep_chunks else None
        if content_type.startswith(b"text/event-stream"):
            await send_headers(
                response.status, [(b"content-type", content_type), *_SSE_HEADERS, *extra_headers]
            )
            await _relay_stream(response, upstream, send_body, record, chunks, withhold_usage)
        else:
            data = await _read_whole(response, upstream)
            record.first_byte_at = time.perf_counter()
            if chunks is not None:
                chunks.append(data)
            await send_headers(
                response.status,
                [
                    (b"content-type", content_type),
                    (b"content-length", str(len(data)).encode()),
                    *extra_headers,
                ],
            )
            await send_body(data, False)
        completed = not record.error
    finally:
        if completed:
            response.release()
        else:  # cancelled or failed: drop the connection so vLLM stops generating
            response.close()


async def read_answer(
    response: aiohttp.ClientResponse, upstream: Upstream, record: Record
) -> bytes:
    """The upstream's whole (non-streamed) answer, for the gateway to rework before sending.

    Closes ``response`` in every case; an upstream error becomes the client's error.
    """
    completed = False
    try:
        if response.status >= 400:
            error_body = await response.content.read(failures.MAX_ERROR_BODY)
            raise _error_answer(response.status, error_body, upstream)
        data = await _read_whole(response, upstream)
        record.first_byte_at = time.perf_counter()
        completed = True
        return data
    finally:
        if completed:
            response.release()
        else:
            response.close()


def _error_answer(status: int, body: bytes, upstream: Upstream) -> OpenAIError:
    error = failures.error_answer(status, body)
    if error.code == "upstream_auth_failed":  # the operator's to fix: say where
        logger.error("upstream %s refused Kodify's API key (HTTP %d)", upstream.display_url, status)
    return error


async def _read_whole(response: aiohttp.ClientResponse, upstream: Upstream) -> bytes:
    try:
        return await response.read()
    except (aiohttp.ClientError, TimeoutError) as exc:
        logger.warning("upstream %s broke off its answer (%s)", upstream.display_url, exc)
        raise failures.broken_answer(exc) from None


async def _relay_stream(
    response: aiohttp.ClientResponse,
    upstream: Upstream,
    send_body: SendBody,
    record: Record,
    chunks: list[bytes] | None,
    withhold_usage: bool,
) -> None:
    usage_filter = _UsageFilter() if withhold_usage else None
    try:
        async for chunk in response.content.iter_any():
            if record.first_byte_at is None:
                record.first_byte_at = time.perf_counter()
            if chunks is not None:
                chunks.append(chunk)
            if usage_filter is not None:
                chunk = usage_filter.feed(chunk)
                if not chunk:
                    continue
            await send_body(chunk, True)
        if usage_filter is not None and usage_filter.pending:
            await send_body(usage_filter.pending, True)
    except (aiohttp.ClientError, TimeoutError) as exc:
        error, reason = failures.broken_stream(
            exc, idle_timeout=settings.KODIFY_UPSTREAM_IDLE_TIMEOUT
        )
        record.error = f"upstream {reason}"
        logger.warning("upstream %s %s", upstream.display_url, reason)
        # Headers are gone already: the error travels as a last SSE event, which the
        # OpenAI SDKs raise as an APIError.
        await send_body(b"data: " + orjson.dumps(error.as_dict()) + b"\n\n", False)
        return
    await send_body(b"", False)


class _UsageFilter:
    """Drops the usage event Kodify asked for from a stream, passing everything else on.

    Upstream chunks split events anywhere, so complete events are passed on as soon as
    they are complete and only an unfinished tail waits for the next chunk.  Only when
    the client did not ask for usage itself; otherwise the stream is not touched at all.
    """

    __slots__ = ("pending",)

    def __init__(self) -> None:
        self.pending = b""

    def feed(self, chunk: bytes) -> bytes:
        data = self.pending + chunk if self.pending else chunk
        lf, crlf = data.rfind(b"\n\n"), data.rfind(b"\r\n\r\n")
        end = max(lf + 2 if lf >= 0 else 0, crlf + 4 if crlf >= 0 else 0)
        if not end:  # no event complete yet
            self.pending = data
            return b""
        complete, self.pending = data[:end], data[end:]
        if b'"usage"' in complete:
            complete = _without_usage_events(complete)
        return complete


def _without_usage_events(data: bytes) -> bytes:
    kept = []
    for event in data.replace(b"\r\n", b"\n").split(b"\n\n"):
        if event and _is_usage_event(event):
            continue
        kept.append(event)
    return b"\n\n".join(kept)


def _is_usage_event(event: bytes) -> bool:
    if not event.startswith(b"data:") or b'"usage"' not in event:
        return False
    try:
        payload = orjson.loads(event[5:])
    except orjson.JSONDecodeError:
        return False
    return (
        isinstance(payload, dict)
        and payload.get("choices") == []
        and isinstance(payload.get("usage"), dict)
    )


def _set_idle_timeout(response: aiohttp.ClientResponse) -> None:
    connection = response.connection
    if connection is not None and connection.protocol is not None:
        connection.protocol.read_timeout = settings.KODIFY_UPSTREAM_IDLE_TIMEOUT
