"""The journal's front door: what the gateway calls once per API request or Tabby event.

``record`` and ``record_event`` must cost a request next to nothing and can never fail
it: they hand the record to this process's :class:`~journal.writer.JournalWriter` and
return.  The writer
starts with the first record of each process (a forked worker gets its own: threads do
not survive a fork), and ``shutdown`` stores what is queued when the server stops.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import threading
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

from journal.record import EventRecord, Record
from journal.writer import JournalWriter

logger = logging.getLogger("kodify.journal")

_writer: JournalWriter | None = None
_writer_pid = 0
_start_lock = threading.Lock()
# settings.LOGS, read once: a read through Django's lazy settings costs about a
# microsecond, half of what recording a request costs otherwise.  Tests that change the
# setting (override_settings, pytest-django's ``settings``) send setting_changed.
_logs: bool | None = None


def journal_on() -> bool:
    global _logs
    on = _logs
    if on is None:
        on = _logs = bool(settings.LOGS)
    return on


@receiver(setting_changed)
def _setting_changed(*, setting: str, **kwargs: Any) -> None:
    global _logs
    if setting == "LOGS":
        _logs = None


def record(rec: Record) -> None:
    """Queue one request's record for the journal; never blocks, never raises."""
    try:
        writer = _writer_here()
        if writer is None:
            return
        if writer.loop is None or writer.loop.is_closed():
            writer.loop = _running_loop()
        writer.submit(rec)
    except Exception:
        logger.exception("Journal: a request could not be recorded")


def start() -> None:
    """Start this process's writer now rather than at its first record (the server's
    start calls it): a worker that replaces a killed one then recovers the records the
    dead one had handed over at once, whether or not a request comes its way."""
    try:
        _writer_here()
    except Exception:
        logger.exception("Journal: the writer could not start")


def record_event(event: EventRecord) -> None:
    """Queue one Tabby completion event for the journal; never blocks, never raises.

    When the writer's queue is full the event is dropped (counted in the writer's
    ``stats.events_dropped``, with a warning at most once a minute): unlike a request,
    an event is worth neither a disk write on the event loop nor a wait.
    """
    try:
        writer = _writer_here()
        if writer is not None:
            writer.submit_event(event)
    except Exception:
        logger.exception("Journal: a completion event could not be recorded")


def flush(timeout: float = 10.0) -> bool:
    """Block until every record and event so far is in the database or the spool; False
    on timeout."""
    writer = _current()
    return True if writer is None else writer.flush(timeout)


async def aflush(timeout: float = 10.0) -> bool:  # noqa: ASYNC109 - flush's own timeout
    """:func:`flush` for async callers (the lifespan, async tests), off the event loop."""
    return await asyncio.to_thread(flush, timeout)


def shutdown(timeout: float = 10.0) -> None:
    """Store what is queued (the spool keeps what cannot be) and stop the writer."""
    global _writer
    with _start_lock:
        writer, _writer = _current(), None
    if writer is not None:
        writer.stop(timeout)


def reset_for_tests() -> None:
    """Stop this process's writer so that the next record starts one with the settings
    of the test at hand."""
    shutdown()


def queued_records() -> int:
    """Records and events waiting in this process's writer queue (0 before it starts):
    what the gateway's metrics report as the journal's backlog in memory."""
    writer = current_writer()
    return 0 if writer is None else writer.queued()


def current_writer() -> JournalWriter | None:
    """This process's writer, if it has started (for tests and diagnostics)."""
    return _current()


def _current() -> JournalWriter | None:
    return _writer if _writer_pid == os.getpid() else None


def _writer_here() -> JournalWriter | None:
    """This process's writer (started on first use), or None while the journal is off."""
    if not (journal_on() if _logs is None else _logs):
        return None
    writer = _writer
    if writer is None or _writer_pid != os.getpid():
        return _start()
    return writer


def _start() -> JournalWriter:
    global _writer, _writer_pid
    with _start_lock:
        pid = os.getpid()
        if _writer is not None and _writer_pid == pid:
            return _writer
        writer = JournalWriter(loop=_running_loop())
        writer.start()
        _writer, _writer_pid = writer, pid
        return writer


def _running_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop of the calling thread: the writer publishes to the live view there."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


@atexit.register
def _at_exit() -> None:
    shutdown()
