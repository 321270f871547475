"""uvicorn's httptools protocol with deadlines for a request's headers and its body.

uvicorn bounds the idle time between requests (``--timeout-keep-alive``) but not how
long a client may take to send a request: a client that sends a byte a second holds its
connection, and a worker's file descriptors, for as long as it likes.  Here the headers
must be in within ``KODIFY_HEADER_TIMEOUT`` of the connection's start (or of the request's
first byte on a kept-alive connection), and the body within ``KODIFY_BODY_TIMEOUT`` of the
headers; a client that misses either gets 408 and the connection is closed.

Served with ``uvicorn --http kodify_site.http_protocol:DeadlineHttpToolsProtocol``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from django.conf import settings
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_MESSAGE = b"The request was not sent in time.\n"
_REQUEST_TIMEOUT = (
    b"HTTP/1.1 408 Request Timeout\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"content-length: " + str(len(_MESSAGE)).encode() + b"\r\n"
    b"connection: close\r\n\r\n" + _MESSAGE
)


class DeadlineHttpToolsProtocol(HttpToolsProtocol):
    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(settings.KODIFY_HEADER_TIMEOUT)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._deadline is None:  # the first byte of a request on a kept-alive connection
            self._arm(settings.KODIFY_HEADER_TIMEOUT)

    def on_headers_complete(self) -> None:
        self._disarm()
        previous = self.cycle
        super().on_headers_complete()
        if self.cycle is not previous:  # a request (not an upgrade to a WebSocket)
            self._arm(settings.KODIFY_BODY_TIMEOUT)

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        cycle: Any = self.cycle
        # Mid-answer (a client still sending while its answer streams), only close.
        if cycle is None or cycle.response_complete or not cycle.response_started:
            self.transport.write(_REQUEST_TIMEOUT)
        self.transport.close()
