"""Stored rows to the live view (``journal/live.py``), from the journal writer's thread.

The live view is a convenience: the rows are in the journal whatever happens here.  So
loading it (it needs Channels and the channel layer's settings) may fail and is logged
once; sending may fail and is logged; neither may stop the writer.  The rows are
summarised in the writer's thread and only the send runs on the event loop, so that a
batch of hundreds of rows does not hold up the requests served there.

The live view is loaded on first use rather than imported: a problem in it must not keep
the writer, and so the journal, from starting.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from typing import Any

from journal.spool import Row
from journal.store import describe

logger = logging.getLogger("kodify.journal")

_problem_logged = False


def live_view() -> Any:
    """The ``journal.live`` module when the live view can be loaded, else None."""
    global _problem_logged
    try:
        from journal import live
    except Exception:
        if not _problem_logged:
            _problem_logged = True
            logger.exception("Journal live view could not be loaded")
        return None
    return live


def publish_rows(loop: asyncio.AbstractEventLoop | None, rows: list[Row]) -> None:
    """Send stored rows to the consoles watching, through ``loop``; never raises."""
    if loop is None or loop.is_closed():
        return
    live = live_view()
    if live is None:
        return
    publish_summaries(loop, [live.summarize(row) for row in rows])  # not in the loop


def publish_summaries(loop: asyncio.AbstractEventLoop | None, summaries: list[Row]) -> None:
    """:func:`publish_rows` for rows summarised already (by the helper process)."""
    live = live_view()
    if loop is None or loop.is_closed() or live is None or not summaries:
        return
    try:
        future = asyncio.run_coroutine_threadsafe(live.broadcast_summaries(summaries), loop)
    except RuntimeError:  # the loop closed in between
        return
    future.add_done_callback(_log_failure)


def _log_failure(future: concurrent.futures.Future[None]) -> None:
    if future.cancelled():
        return
    error = future.exception()
    if error is not None:
        logger.warning("Journal live view: %s", describe(error))
