"""HTTP spoken over a bare socket, for what a well-behaved client library will not do.

httpx sends the body it is given, whole, at once: the attacks here lie about the body's
length, dribble headers a byte at a time, or open a WebSocket with a hostile Origin, and
time how long the server takes to answer.
"""

from __future__ import annotations

import contextlib
import select
import socket
import time
from dataclasses import dataclass


@dataclass
class RawAnswer:
    status: int | None  # None: the connection closed or timed out before a status line
    seconds: float  # from the first byte sent to the status line (or the give-up)
    head: str = ""
    body: bytes = b""


def _request_head(
    method: str, path: str, address: tuple[str, int], headers: dict[str, str]
) -> bytes:
    lines = [
        f"{method} {path} HTTP/1.1",
        f"Host: {address[0]}:{address[1]}",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _read_answer(sock: socket.socket, started: float, deadline: float) -> RawAnswer:
    """Read until the head is in and the body it announces (or the connection's end)."""
    data = b""
    status: int | None = None
    seconds = 0.0
    while time.monotonic() < deadline:
        ready, _, _ = select.select([sock], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        try:
            chunk = sock.recv(65536)
        except OSError:
            break
        if not chunk:
            break
        data += chunk
        if status is None and b"\r\n" in data:
            seconds = time.monotonic() - started
            with contextlib.suppress(ValueError, IndexError):
                status = int(data.split(b"\r\n", 1)[0].split()[1])
        head, sep, body = data.partition(b"\r\n\r\n")
        if sep and _complete(head, body):
            break
    if status is None:
        seconds = time.monotonic() - started
    head, _, body = data.partition(b"\r\n\r\n")
    return RawAnswer(status, seconds, head.decode("latin-1"), body)


def _complete(head: bytes, body: bytes) -> bool:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value.strip() or 0)
    return b" 101 " in head.split(b"\r\n", 1)[0]  # an upgrade has no body to wait for


def oversized(
    address: tuple[str, int],
    method: str,
    path: str,
    headers: dict[str, str],
    *,
    declared: int = 1 << 30,
    sent: int = 16 * 1024,
    timeout: float = 10.0,
) -> RawAnswer:
    """Announce a body of ``declared`` bytes, send only ``sent`` of them, read the answer.

    A server that waits for the whole body before answering times out here.
    """
    with socket.create_connection(address, timeout=timeout) as sock:
        started = time.monotonic()
        head = {**headers, "Content-Length": str(declared), "Content-Type": "application/json"}
        with contextlib.suppress(OSError):  # the server may answer and close mid-body
            sock.sendall(_request_head(method, path, address, head))
            sock.sendall(b"{" + b" " * (sent - 1))
        return _read_answer(sock, started, started + timeout)


def slow_headers(
    address: tuple[str, int], path: str, *, interval: float, timeout: float
) -> RawAnswer:
    """Send a request's head one byte every ``interval`` seconds, as a slowloris client
    does, and return the server's answer (expected: 408, before the head is complete)."""
    # A head long enough that it cannot be finished within the server's deadline.
    head = _request_head("GET", path, address, {"User-Agent": "s" * 400})
    with socket.create_connection(address, timeout=timeout) as sock:
        started = time.monotonic()
        deadline = started + timeout
        for byte in head:
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                break
            # Waiting for an answer paces the bytes: the server speaking ends the wait.
            ready, _, _ = select.select([sock], [], [], interval)
            if ready or time.monotonic() > deadline:
                break
        return _read_answer(sock, started, deadline)


def websocket_handshake(
    address: tuple[str, int], path: str, headers: dict[str, str], timeout: float = 10.0
) -> RawAnswer:
    """Open a WebSocket (RFC 6455's handshake) and return the answer: 101 when accepted."""
    head = {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version": "13",
        **headers,
    }
    with socket.create_connection(address, timeout=timeout) as sock:
        started = time.monotonic()
        sock.sendall(_request_head("GET", path, address, head))
        return _read_answer(sock, started, started + timeout)
