"""The ceiling ``make bench`` holds Kodify to: a bare ASGI function relaying to the upstream.

No framework, no authentication, no journal, no routing: the request body goes to
``KODIFY_BENCH_UPSTREAM`` + the path through one shared aiohttp session, and the answer
comes back as it arrives (chunk by chunk for a stream).  Served by uvicorn with Kodify's
own flags (uvloop, httptools), this is what any Python gateway on this stack could reach;
Kodify's figures are reported as a share of it.

    KODIFY_BENCH_UPSTREAM=http://127.0.0.1:9001 uvicorn bench.ceiling:app --loop uvloop \\
        --http httptools --no-access-log
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import aiohttp

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

UPSTREAM = os.environ.get("KODIFY_BENCH_UPSTREAM", "http://127.0.0.1:9001")
_session: aiohttp.ClientSession | None = None


def session() -> aiohttp.ClientSession:
    global _session
    if _session is None:
        _session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=None),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=5),
            auto_decompress=False,
        )
    return _session


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if _session is not None:
                    await _session.close()
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    async with session().request(
        scope["method"],
        UPSTREAM + scope["path"],
        data=body or None,
        headers={"Content-Type": "application/json"},
    ) as upstream:
        headers = [
            (b"content-type", upstream.headers.get("Content-Type", "application/json").encode())
        ]
        await send({"type": "http.response.start", "status": upstream.status, "headers": headers})
        async for chunk in upstream.content.iter_any():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
