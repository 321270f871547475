"""Time to first token: sequential streams, timed from sending to the first body chunk.

wrk times whole responses; what a user of a coding assistant feels is the wait for the
first chunk, so this is measured apart, one request at a time on one keep-alive
connection (as an editor plugin does).

The client is asyncio streams speaking just enough HTTP/1.1, not aiohttp's client: on this
machine aiohttp's client itself added 0.5 to 2 ms before handing over a chunked response
(measured against a raw socket), as much as the 2 ms budget this is meant to check.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

_DONE = b"data: [DONE]\n\n"
REQUEST_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class TtftResult:
    samples_ms: list[float]
    failures: int  # a status other than 200, or a stream that did not end with [DONE]

    @property
    def p50_ms(self) -> float:
        return percentile(self.samples_ms, 50)

    @property
    def p99_ms(self) -> float:
        return percentile(self.samples_ms, 99)


@dataclass(frozen=True)
class Response:
    status: int
    first_chunk_at: float  # perf_counter() when the first body bytes were read
    body: bytes


def percentile(values: Sequence[float], percent: float) -> float:
    """Nearest-rank percentile: a value that was actually observed, never interpolated."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(percent / 100 * len(ordered)))
    return ordered[rank - 1]


def build_request(url: str, body: bytes, headers: Mapping[str, str]) -> bytes:
    """One POST, written in one piece so that no segment waits for another."""
    parts = urlsplit(url)
    lines = [
        f"POST {parts.path or '/'} HTTP/1.1",
        f"Host: {parts.netloc}",
        f"Content-Length: {len(body)}",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def read_response(reader: asyncio.StreamReader) -> Response:
    """Read one response (chunked or with a Content-Length) and when its body began."""
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    status = int(status_line.split()[1])
    headers = {
        name.strip().lower(): value.strip()
        for name, _, value in (line.partition(":") for line in header_lines if line)
    }
    if headers.get("transfer-encoding", "").lower() == "chunked":
        return await _read_chunked(reader, status)
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return Response(status, time.perf_counter(), body)


async def _read_chunked(reader: asyncio.StreamReader, status: int) -> Response:
    chunks: list[bytes] = []
    first_chunk_at = math.nan
    while True:
        size = int((await reader.readline()).split(b";")[0].strip(), 16)
        data = await reader.readexactly(size + 2)  # the chunk and its CRLF
        if size == 0:
            return Response(status, first_chunk_at, b"".join(chunks))
        if not chunks:
            first_chunk_at = time.perf_counter()
        chunks.append(data[:-2])


def measure(
    url: str, body: bytes, headers: Mapping[str, str], *, count: int, warmup: int
) -> TtftResult:
    try:
        import uvloop  # the client's own overhead is part of every sample: keep it small
    except ImportError:
        return asyncio.run(_measure(url, body, headers, count=count, warmup=warmup))
    return uvloop.run(_measure(url, body, headers, count=count, warmup=warmup))


async def _measure(
    url: str, body: bytes, headers: Mapping[str, str], *, count: int, warmup: int
) -> TtftResult:
    parts = urlsplit(url)
    request = build_request(url, body, headers)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    samples: list[float] = []
    failures = 0
    try:
        for i in range(warmup + count):
            started = time.perf_counter()
            writer.write(request)
            response = await asyncio.wait_for(read_response(reader), REQUEST_TIMEOUT_S)
            if i < warmup:
                continue
            samples.append((response.first_chunk_at - started) * 1e3)
            failures += response.status != 200 or not response.body.endswith(_DONE)
    finally:
        writer.close()
    return TtftResult(samples_ms=samples, failures=failures)
