"""One body limit for every route, enforced while the body is read.

The public API's consumers count their bodies themselves; Django's ASGI handler instead
reads a whole body (spooling it to disk) before any view or middleware of Django's runs,
so a 1 GiB POST to the login page would be read whole before its 403.  This wrapper sits
in front of Django: a ``Content-Length`` over ``KODIFY_MAX_BODY_BYTES`` is answered 413 at
once, and a body without one (chunked) is counted as it comes and cut off at the limit.
"""

from __future__ import annotations

from typing import Any

import orjson
from django.conf import settings

Scope = dict[str, Any]
Message = dict[str, Any]


def too_large_answer(limit: int) -> tuple[Message, Message]:
    body = orjson.dumps(
        {
            "error": {
                "message": f"The request body is over {limit} bytes (KODIFY_MAX_BODY_BYTES).",
                "type": "invalid_request_error",
                "param": None,
                "code": "request_too_large",
            }
        }
    )
    start = {
        "type": "http.response.start",
        "status": 413,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ],
    }
    return start, {"type": "http.response.body", "body": body}


def declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class BodyLimit:
    """ASGI middleware: bodies over ``KODIFY_MAX_BODY_BYTES`` get 413, read no further."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit: int = settings.KODIFY_MAX_BODY_BYTES
        declared = declared_length(scope)
        if declared is not None and declared > limit:
            for message in too_large_answer(limit):
                await send(message)
            return
        received = 0
        answered = False

        async def counted_receive() -> Message:
            nonlocal received, answered
            if answered:
                return {"type": "http.disconnect"}
            message: Message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    answered = True
                    for reply in too_large_answer(limit):
                        await send(reply)
                    # The application sees a client that went away, and stops reading.
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if not answered:  # the 413 is the answer; nothing of the application's follows
                await send(message)

        await self.app(scope, counted_receive, guarded_send)
