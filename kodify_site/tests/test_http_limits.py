"""Limits that hold before any view runs: the body size on Django's routes, and the
deadlines for a request's headers and body (``kodify_site.http_protocol``).

The body limit is called in process; the deadlines need a real uvicorn, run here in a
thread with Kodify's protocol in front of a small application.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import uvicorn
from django.test import override_settings

from kodify_site.body_limit import BodyLimit
from kodify_site.http_protocol import DeadlineHttpToolsProtocol
from kodify_site.testing import WAIT_S, wait_until

pytestmark = pytest.mark.smoke

LIMIT = 64 * 1024
CHUNK = 16 * 1024


class Reader:
    """An application that reads the whole body, as Django's handler does, then answers."""

    def __init__(self) -> None:
        self.read = 0
        self.saw_disconnect = False

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                self.saw_disconnect = True
                return
            self.read += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


async def post(app: Any, headers: list[tuple[bytes, bytes]], chunks: int) -> tuple[list[Any], int]:
    """POST ``chunks`` chunks of ``CHUNK`` bytes; the messages sent back and chunks taken."""
    taken = 0
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        nonlocal taken
        taken += 1
        return {"type": "http.request", "body": b"x" * CHUNK, "more_body": taken < chunks}

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/admin/login/", "headers": headers}
    await app(scope, receive, send)
    return sent, taken


@override_settings(KODIFY_MAX_BODY_BYTES=LIMIT)
async def test_a_declared_length_over_the_limit_is_refused_unread() -> None:
    reader = Reader()
    sent, taken = await post(BodyLimit(reader), [(b"content-length", b"1073741824")], 65536)
    assert taken == 0
    assert sent[0]["status"] == 413
    assert orjson.loads(sent[1]["body"])["error"]["code"] == "request_too_large"


@override_settings(KODIFY_MAX_BODY_BYTES=LIMIT)
async def test_a_body_without_a_length_is_cut_off_at_the_limit() -> None:
    reader = Reader()
    sent, taken = await post(BodyLimit(reader), [], 65536)  # 1 GiB, chunked
    assert taken == LIMIT // CHUNK + 1  # read no further than the chunk over the limit
    assert reader.saw_disconnect
    assert [m.get("status") for m in sent if m["type"] == "http.response.start"] == [413]


@override_settings(KODIFY_MAX_BODY_BYTES=LIMIT)
async def test_a_body_within_the_limit_reaches_the_application() -> None:
    reader = Reader()
    sent, _ = await post(BodyLimit(reader), [(b"content-length", str(LIMIT).encode())], 4)
    assert reader.read == LIMIT
    assert sent[0]["status"] == 200


# -- deadlines -----------------------------------------------------------------------------


async def echo(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        while (message := await receive())["type"] == "websocket.receive":
            await send({"type": "websocket.send", "text": message.get("text")})
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    length = (b"content-length", str(len(body)).encode())
    await send({"type": "http.response.start", "status": 200, "headers": [length]})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture
def served() -> Iterator[int]:
    """uvicorn with Kodify's protocol on a free port, deadlines of one second."""
    config = uvicorn.Config(
        echo,
        host="127.0.0.1",
        port=0,
        http=DeadlineHttpToolsProtocol,
        lifespan="off",
        log_level="warning",
    )
    server = uvicorn.Server(config)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(server.serve(),))
    with override_settings(KODIFY_HEADER_TIMEOUT=1.0, KODIFY_BODY_TIMEOUT=1.0):
        thread.start()
        assert wait_until(lambda: server.started), "uvicorn did not start"
        port = server.servers[0].sockets[0].getsockname()[1]
        yield port
        server.should_exit = True
        thread.join(WAIT_S)
    loop.close()


def connect(port: int) -> socket.socket:
    client = socket.create_connection(("127.0.0.1", port), timeout=WAIT_S)
    return client


def read_all(client: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    data = b""
    while chunk := client.recv(65536):
        data += chunk
    return data


def test_headers_that_never_end_get_408_and_the_connection_closes(served: int) -> None:
    with connect(served) as client:
        client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
        assert read_all(client).startswith(b"HTTP/1.1 408 ")


def test_a_connection_that_sends_nothing_is_closed(served: int) -> None:
    with connect(served) as client:
        assert read_all(client).startswith(b"HTTP/1.1 408 ")


def test_a_body_that_never_ends_gets_408(served: int) -> None:
    with connect(served) as client:
        client.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
        assert read_all(client).startswith(b"HTTP/1.1 408 ")


def test_prompt_requests_on_a_kept_alive_connection_are_answered(served: int) -> None:
    with connect(served) as client:
        for _ in range(2):
            client.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
            answer = b""
            while not answer.endswith(b"hi"):
                answer += client.recv(65536)
            assert answer.startswith(b"HTTP/1.1 200 ")


def test_a_websocket_outlives_the_header_deadline(served: int) -> None:
    from websockets.sync.client import connect as websocket

    with websocket(f"ws://127.0.0.1:{served}/", open_timeout=WAIT_S) as ws:
        # What is tested is a duration: past both deadlines, the socket still talks.
        time.sleep(2.5)
        ws.send("still here")
        assert ws.recv(timeout=WAIT_S) == "still here"
