"""ASGI lifespan: start the upstream refresh loop, close connections on shutdown.

Servers without lifespan events (daphne) still work: the loop starts on the first request.
"""

from typing import Any

from accounts.auth import get_token_usage
from gateway.http_client import close_upstream_session
from gateway.upstreams import get_table


class Lifespan:
    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                get_table().ensure_background_refresh()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await get_table().close()
                await close_upstream_session()
                await get_token_usage().flush()
                await send({"type": "lifespan.shutdown.complete"})
                return
