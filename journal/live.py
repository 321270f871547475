"""The live view: new journal rows pushed to the console over a WebSocket (/ws/journal/).

The journal writer calls :func:`broadcast` after each batch it inserts; the batch goes to
the channel layer's group once (Redis fans it out to every worker's consumers), as small
summaries: the console's table needs no prompt, and a batch may hold hundreds of rows.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.layers import get_channel_layer

from journal.selectors import PREVIEW_CHARS, one_line

logger = logging.getLogger("kodify.journal")

GROUP = "journal.live"
MESSAGE_TYPE = "journal.batch"  # handled by JournalLiveConsumer.journal_batch
VIEW_PERMISSION = "journal.view_entry"
REFUSED = 4403  # the close code for "not allowed" (4000-4999 are the application's)

_SUMMARY_FIELDS = (
    "request_id",
    "username",
    "client_name",
    "endpoint",
    "feature",
    "model",
    "status",
    "cancelled",
    "ttft_ms",
    "latency_ms",
    "prompt_tokens",
    "completion_tokens",
)


def summarize(row: Mapping[str, Any]) -> dict[str, Any]:
    """What the live table shows of one row, JSON-safe (the channel layer is msgpack)."""
    summary = {name: row.get(name) for name in _SUMMARY_FIELDS}
    created_at = row.get("created_at")
    summary["created_at"] = (
        created_at.astimezone(dt.UTC).isoformat()
        if isinstance(created_at, dt.datetime)
        else str(created_at or "")
    )
    # Rows reach us already redacted: the preview shows nothing the journal does not keep.
    summary["preview"] = one_line(
        str(row.get("response_text") or row.get("error") or ""), PREVIEW_CHARS
    )
    return summary


async def broadcast(rows: list[dict[str, Any]]) -> None:
    """Push one inserted batch to the consoles watching; never fails the journal writer.

    The live view is a convenience: with the channel layer down, the rows are still in
    the journal, so a failure here is logged and dropped.
    """
    await broadcast_summaries([summarize(row) for row in rows])


async def broadcast_summaries(summaries: list[dict[str, Any]]) -> None:
    """:func:`broadcast` of rows summarised already (by the journal writer's thread, so
    that a batch of hundreds of rows does not hold up the event loop)."""
    layer = get_channel_layer()
    if layer is None or not summaries:
        return
    message = {"type": MESSAGE_TYPE, "rows": summaries}
    try:
        await layer.group_send(GROUP, message)
    except Exception:
        logger.warning("journal live view: could not send %d rows", len(summaries), exc_info=True)


@database_sync_to_async
def _may_read(user: Any) -> bool:
    return bool(
        user is not None
        and user.is_authenticated
        and user.is_active
        and user.is_staff
        and user.has_perm(VIEW_PERMISSION)
    )


class JournalLiveConsumer(AsyncJsonWebsocketConsumer):
    """Forwards each broadcast batch to one console page, as ``{"rows": [...]}``."""

    joined = False

    async def connect(self) -> None:
        if not await _may_read(self.scope.get("user")):
            await self.close(code=REFUSED)
            return
        await self.channel_layer.group_add(GROUP, self.channel_name)
        self.joined = True
        await self.accept()

    async def disconnect(self, code: int) -> None:
        if self.joined:
            await self.channel_layer.group_discard(GROUP, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        """The page only listens; anything it sends is ignored."""

    async def journal_batch(self, message: dict[str, Any]) -> None:
        await self.send_json({"rows": message["rows"]})
