"""ASGI lifespan: start the upstream refresh loop; on shutdown close connections and flush
the journal.

Servers without lifespan events (daphne) still work: the loop starts on the first request.
"""

import asyncio
from typing import Any

from accounts.auth import get_token_usage
from gateway import metrics
from gateway.http_client import close_upstream_session
from gateway.upstreams import get_table
from journal.recorder import shutdown as shutdown_journal
from journal.recorder import start as start_journal

# Longest wait for the journal writer at shutdown; what it cannot write goes to its spool.
JOURNAL_SHUTDOWN_TIMEOUT = 10.0


class Lifespan:
    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                get_table().ensure_background_refresh()
                metrics.start()
                start_journal()  # recovers what a killed worker had handed over
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await get_table().close()
                await close_upstream_session()
                await get_token_usage().flush()
                await asyncio.to_thread(shutdown_journal, JOURNAL_SHUTDOWN_TIMEOUT)
                metrics.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return
