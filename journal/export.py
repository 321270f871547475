"""The journal as CSV: the rows of any filter, streamed as they are read.

Journal texts are written by API users and read by auditors in spreadsheets, so a text
cell that a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``…) is prefixed
with an apostrophe, as OWASP advises; csv.writer quotes the rest (commas, quotes,
newlines).  A UTF-8 byte-order mark lets Excel read non-Latin text.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any

from asgiref.sync import sync_to_async

from journal.selectors import EXPORT_FIELDS

CHUNK_BYTES = 64 * 1024
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
BOM = "\ufeff"
DURATION_FIELDS = ("ttft_ms", "latency_ms")


class _Echo:
    """csv.writer writes to a file; this one hands each line back instead."""

    def write(self, value: str) -> str:
        return value


def cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        # To the millisecond, as logs and spreadsheets compare times; the offset keeps
        # it unambiguous wherever the file is opened.
        return value.astimezone(dt.UTC).isoformat(timespec="milliseconds")
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def duration(value: float | None) -> str:
    """Milliseconds to a tenth: finer than any of these timings means, where the float's
    whole repr (``12.300000000000001``) would only clutter a spreadsheet."""
    return "" if value is None else f"{value:.1f}"


def csv_lines(rows: Iterable[tuple[Any, ...]]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    durations = {EXPORT_FIELDS.index(name) for name in DURATION_FIELDS}
    yield BOM + writer.writerow(EXPORT_FIELDS)
    for row in rows:
        yield writer.writerow(
            [
                duration(value) if index in durations else cell(value)
                for index, value in enumerate(row)
            ]
        )


def chunks(lines: Iterable[str], size: int = CHUNK_BYTES) -> Iterator[bytes]:
    """Lines gathered into pieces of about ``size`` bytes: fewer, larger writes."""
    buffer: list[str] = []
    length = 0
    for line in lines:
        buffer.append(line)
        length += len(line)
        if length >= size:
            yield "".join(buffer).encode()
            buffer, length = [], 0
    if buffer:
        yield "".join(buffer).encode()


async def async_chunks(pieces: Iterator[bytes]) -> AsyncIterator[bytes]:
    """The same pieces for an ASGI server, which wants an async iterator.

    Each piece is read in the request's one sync thread (thread_sensitive): the
    database cursor behind ``pieces`` belongs to that thread's connection.
    """
    take = sync_to_async(lambda: next(pieces, None))
    try:
        while (piece := await take()) is not None:
            yield piece
    finally:
        # A client that went away leaves the generator open: close its cursor here, in
        # the thread that owns it, rather than wherever garbage collection would.
        close = getattr(pieces, "close", None)
        if close is not None:
            await sync_to_async(close)()
