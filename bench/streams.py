"""Long streams and abandoned ones: what wrk's short requests do not show.

A code assistant's streams stay open for tens of seconds, a thousand at a time on one
worker, and its clients give up on most of them (the user typed on).  wrk measures
requests that last milliseconds and never walks away from one, so two more measurements:

* **Open streams held**: ``count`` streams opened at once and held open for ``hold_s``
  seconds, the fake sending a chunk every ``hold_s / chunks`` seconds.  A gateway that
  buffers, or that falls behind under that many connections, shows it as a chunk that
  comes late against its schedule (chunk *i* is due at the stream's first chunk plus
  *i* times the pace; the first chunk is the reference because opening a thousand
  connections at once takes a while on its own) and as the largest gap between two
  chunks; what each open stream costs shows in the server's resident memory, sampled
  every 0.5 s while they are open.
* **Disconnect → upstream closed**: a stream cut off by its client after the first chunk
  must stop the generation upstream at once, or the model goes on working for nobody.
  The client closes its connection and notes ``time.monotonic()``; the fake upstream (a
  process of its own) notes ``time.monotonic()`` when it sees its connection from the
  gateway go, under the request's ``X-Request-Id`` (Kodify forwards a well-formed client
  id upstream), and serves it on ``GET /_fake/disconnects``.  CLOCK_MONOTONIC is one
  clock for every process on Linux, so the difference is the time the upstream request
  outlived its client.  The fake's aiohttp server cancels its handler as soon as the
  gateway's connection closes, so what is timed is the gateway's reaction, not the
  fake's; but a gateway that only noticed its client gone when it next wrote to it
  would be found out at the next chunk, and the fake paces its chunks 50 ms apart (a
  model's usual token rate): such a gateway shows figures spread up to 50 ms and more,
  one that watches for the client's going shows a few milliseconds.  A faster pace
  would hide the difference under the goal.

Both run against any :class:`bench.targets.Target` (the fake itself gives the floor);
the goals (:func:`goals`) are the issue's and information only, like the rest of the
bench's.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import resource
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from bench.scenarios import chat_body
from bench.targets import Target, ensure_alive
from bench.ttft import percentile

CHAT_PATH = "/v1/chat/completions"
DISCONNECTS_PATH = "/_fake/disconnects"
NONE = "n/a"

RSS_SAMPLE_S = 0.5
CONNECT_TIMEOUT_S = 60.0  # a thousand connections at once may queue on a small backlog
READ_SLACK_S = 30.0  # on top of twice the pace before a silent stream counts as failed
# Disconnects: a stream long enough never to end by itself while it is being cut off.
DISCONNECT_CHUNKS = 400
DISCONNECT_DELAY_S = 0.05
DISCONNECT_WAIT_S = 5.0  # how long the upstream may take to notice before it is a failure
DISCONNECT_POLL_S = 0.01

# The goals, information only.
RSS_GOAL_MB = 150.0
DISCONNECT_GOAL_MS = 50.0
LATENESS_FLOOR_S = 0.5  # a chunk this late (or twice the pace, if more) was held back

Goal = tuple[str, bool, str]  # (label, holds, the figures it was judged on)


@dataclass(frozen=True)
class OpenStreamsResult:
    requests: int
    errors: int
    chunks: int  # per stream
    delay_s: float  # the pace: one chunk every delay_s
    rss_before_mb: float | None  # the server's, before the streams opened (None: unknown)
    rss_peak_mb: float | None  # the largest sample while they were open
    max_gap_s: float | None  # between two consecutive chunks of any stream
    worst_lateness_ms: float | None  # the latest chunk against its schedule
    error_samples: tuple[str, ...] = ()  # the first few failures, said in words


@dataclass(frozen=True)
class DisconnectResult:
    times: int
    closed_ms: tuple[float, ...]  # client gone → upstream saw its connection go, each
    not_closed: int  # the upstream did not see it go within DISCONNECT_WAIT_S
    errors: int = 0  # streams that failed before their first chunk (nothing to cut off)
    error_samples: tuple[str, ...] = ()

    @property
    def p50_ms(self) -> float:
        return percentile(self.closed_ms, 50)

    @property
    def p95_ms(self) -> float:
        return percentile(self.closed_ms, 95)

    @property
    def max_ms(self) -> float:
        return max(self.closed_ms) if self.closed_ms else math.nan


@dataclass(frozen=True)
class StreamOutcome:
    """One stream as its client saw it: when each chunk came, and what went wrong."""

    arrivals: tuple[float, ...]  # time.monotonic() of each chunk with content
    error: str | None = None


def stream_body(chunks: int, delay_s: float) -> bytes:
    """The bench's stream chat body, steering the fake to ``chunks`` chunks, ``delay_s``
    apart (the fake sleeps that long before each one, the first too)."""
    body = {**chat_body(stream=True), "fake": {"chunks": chunks, "delay": delay_s}}
    return orjson.dumps(body)


def rss_mb(pid: int) -> float | None:
    """The process's resident memory now, in MB (Linux ``/proc``; None when unreadable)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


# -- open streams held -------------------------------------------------------------------


async def hold_open_streams(
    url: str,
    headers: Mapping[str, str],
    server_pid: int,
    *,
    count: int,
    hold_s: float,
    chunks: int = 20,
) -> OpenStreamsResult:
    """``count`` streams through ``url``, all opened at once, each ``chunks`` chunks paced
    ``hold_s / chunks`` apart, read to the end, with ``server_pid``'s RSS sampled."""
    delay = hold_s / chunks
    body = stream_body(chunks, delay)
    _allow_sockets(count)
    rss_before = rss_mb(server_pid)
    samples: list[float] = [] if rss_before is None else [rss_before]
    done = asyncio.Event()
    sampler = asyncio.create_task(_sample_rss(server_pid, samples, done))
    timeout = aiohttp.ClientTimeout(
        total=None, sock_connect=CONNECT_TIMEOUT_S, sock_read=2 * delay + READ_SLACK_S
    )
    connector = aiohttp.TCPConnector(limit=0)
    try:
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            outcomes = await asyncio.gather(
                *(_one_stream(session, url, headers, body, chunks) for _ in range(count))
            )
    finally:
        done.set()
        await sampler
    return summarise_streams(
        outcomes,
        chunks=chunks,
        delay_s=delay,
        rss_before_mb=rss_before,
        rss_peak_mb=max(samples) if samples else None,
    )


async def _one_stream(
    session: aiohttp.ClientSession,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    chunks: int,
) -> StreamOutcome:
    arrivals: list[float] = []
    try:
        async with session.post(url, data=body, headers=dict(headers)) as response:
            if response.status != 200:
                text = (await response.read())[:200].decode("utf-8", "replace")
                return StreamOutcome((), f"status {response.status}: {text}")
            finished = False
            async for raw in response.content:
                now = time.monotonic()
                payload = _data(raw)
                if payload is None:
                    continue
                if payload == b"[DONE]":
                    finished = True
                    break
                if _has_choices(payload):
                    arrivals.append(now)
    except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
        return StreamOutcome(tuple(arrivals), f"{type(exc).__name__}: {exc}")
    if not finished:
        return StreamOutcome(tuple(arrivals), "the stream ended without data: [DONE]")
    if len(arrivals) != chunks:
        return StreamOutcome(tuple(arrivals), f"{len(arrivals)} chunks instead of {chunks}")
    return StreamOutcome(tuple(arrivals))


def _data(raw: bytes) -> bytes | None:
    """An SSE line's ``data:`` payload (None for other lines: blank, comments, fields)."""
    line = raw.strip()
    return line[5:].strip() if line.startswith(b"data:") else None


def _has_choices(payload: bytes) -> bool:
    """A chunk with text; a usage-only chunk (``"choices": []``) or one that only says
    why the answer ended (an empty delta, as some gateways send apart) is not counted."""
    event: Any = orjson.loads(payload)  # a malformed event fails the stream (ValueError)
    if not isinstance(event, dict) or not event.get("choices"):
        return False
    choice = event["choices"][0]
    if not isinstance(choice, dict):
        return False
    delta = choice.get("delta")
    text = delta.get("content") if isinstance(delta, dict) else choice.get("text")
    return bool(text)


async def _sample_rss(pid: int, samples: list[float], done: asyncio.Event) -> None:
    while not done.is_set():
        value = rss_mb(pid)
        if value is not None:
            samples.append(value)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), RSS_SAMPLE_S)


def _allow_sockets(count: int) -> None:
    """Raise this process's open-file limit (up to its hard limit) to hold ``count``
    connections; the servers keep the limits they started with."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = count + 256
    if soft != resource.RLIM_INFINITY and soft < wanted:
        ceiling = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (ceiling, hard))


def stream_timing(arrivals: Sequence[float], delay_s: float) -> tuple[float, float]:
    """(largest gap between consecutive chunks in s, latest chunk against its schedule in
    ms) of one stream; chunk *i* is due at the first chunk's time plus *i* times ``delay_s``."""
    if not arrivals:
        return 0.0, 0.0
    first = arrivals[0]
    gap = max((b - a for a, b in itertools.pairwise(arrivals)), default=0.0)
    late = max(at - (first + i * delay_s) for i, at in enumerate(arrivals))
    return gap, late * 1000


def summarise_streams(
    outcomes: Sequence[StreamOutcome],
    *,
    chunks: int,
    delay_s: float,
    rss_before_mb: float | None,
    rss_peak_mb: float | None,
) -> OpenStreamsResult:
    """The figures over every stream (the failed ones' chunks included: a stream cut off
    half-way still says how late its chunks came)."""
    timed = [stream_timing(o.arrivals, delay_s) for o in outcomes if o.arrivals]
    failures = [o.error for o in outcomes if o.error is not None]
    return OpenStreamsResult(
        requests=len(outcomes),
        errors=len(failures),
        chunks=chunks,
        delay_s=delay_s,
        rss_before_mb=rss_before_mb,
        rss_peak_mb=rss_peak_mb,
        max_gap_s=max((gap for gap, _ in timed), default=None),
        worst_lateness_ms=max((late for _, late in timed), default=None),
        error_samples=tuple(failures[:5]),
    )


# -- disconnect → upstream closed --------------------------------------------------------


class _StreamFailed(Exception):
    """A stream to be cut off failed before its first chunk."""


async def measure_disconnects(
    url: str, headers: Mapping[str, str], upstream_url: str, *, times: int
) -> DisconnectResult:
    """``times`` streams through ``url``, one after the other, each cut off by its client
    after its first chunk; each timed until the fake at ``upstream_url`` saw it go."""
    body = stream_body(DISCONNECT_CHUNKS, DISCONNECT_DELAY_S)
    closed: list[float] = []
    not_closed = 0
    failures: list[str] = []
    timeout = aiohttp.ClientTimeout(total=30)
    # Streams on a connection of their own each (closed with them); polls on keep-alive.
    streams = aiohttp.TCPConnector(limit=0, force_close=True)
    async with (
        aiohttp.ClientSession(connector=streams, timeout=timeout) as session,
        aiohttp.ClientSession(timeout=timeout) as poller,
    ):
        for _ in range(times):
            request_id = f"bench-disc-{uuid.uuid4().hex}"
            try:
                cut_at = await _cut_after_first_chunk(
                    session, url, {**headers, "X-Request-Id": request_id}, body
                )
            except (_StreamFailed, aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
                failures.append(f"{type(exc).__name__}: {exc}")
                continue
            seen_at = await wait_for_disconnect(poller, upstream_url, request_id)
            if seen_at is None:
                not_closed += 1
            else:
                closed.append((seen_at - cut_at) * 1000)
    return DisconnectResult(
        times=times,
        closed_ms=tuple(closed),
        not_closed=not_closed,
        errors=len(failures),
        error_samples=tuple(failures[:5]),
    )


async def _cut_after_first_chunk(
    session: aiohttp.ClientSession, url: str, headers: Mapping[str, str], body: bytes
) -> float:
    """Open the stream, read to its first chunk, close the connection; returns when."""
    response = await session.post(url, data=body, headers=dict(headers))
    try:
        if response.status != 200:
            text = (await response.read())[:200].decode("utf-8", "replace")
            raise _StreamFailed(f"status {response.status}: {text}")
        async for raw in response.content:
            payload = _data(raw)
            if payload is not None and payload != b"[DONE]":
                response.close()  # closes the connection itself, not back to the pool
                return time.monotonic()
        raise _StreamFailed("the stream ended before its first chunk")
    finally:
        response.close()


async def wait_for_disconnect(
    session: aiohttp.ClientSession,
    upstream_url: str,
    request_id: str,
    wait_s: float = DISCONNECT_WAIT_S,
) -> float | None:
    """The fake's ``time.monotonic()`` when it saw ``request_id``'s client go, polled
    every 10 ms; None if it has not within ``wait_s``."""
    deadline = time.monotonic() + wait_s
    while True:
        with contextlib.suppress(aiohttp.ClientError, TimeoutError, ValueError):
            async with session.get(
                upstream_url + DISCONNECTS_PATH, params={"id": request_id}
            ) as response:
                seen = orjson.loads(await response.read())
                if isinstance(seen, dict) and request_id in seen:
                    return float(seen[request_id])
        if time.monotonic() >= deadline:
            return None
        await asyncio.sleep(DISCONNECT_POLL_S)


# -- the bench's side: targets, the table, the goals -------------------------------------


def open_streams(
    target: Target,
    upstream_target: Target,
    *,
    count: int = 1000,
    hold_s: float = 60.0,
    chunks: int = 20,
) -> OpenStreamsResult:
    """:func:`hold_open_streams` through ``target`` (its server's RSS sampled); both
    servers must still be alive after it."""
    result = asyncio.run(
        hold_open_streams(
            target.url + CHAT_PATH,
            target.request_headers(),
            target.server.process.pid,
            count=count,
            hold_s=hold_s,
            chunks=chunks,
        )
    )
    ensure_alive(target, "the open streams")
    ensure_alive(upstream_target, "the open streams")
    return result


def disconnects(target: Target, upstream_target: Target, *, times: int = 20) -> DisconnectResult:
    """:func:`measure_disconnects` through ``target``, timed by the fake upstream's record."""
    result = asyncio.run(
        measure_disconnects(
            target.url + CHAT_PATH, target.request_headers(), upstream_target.url, times=times
        )
    )
    ensure_alive(target, "the disconnects")
    ensure_alive(upstream_target, "the disconnects")
    return result


def lateness_allowed_ms(delay_s: float) -> float:
    """How late a chunk may come before it counts as held back: scheduling noise on a busy
    machine reaches a few hundred ms, and a chunk held back is a whole pace late."""
    return max(LATENESS_FLOOR_S, 2 * delay_s) * 1000


def chunk_held_back(result: OpenStreamsResult) -> bool:
    """Whether some chunk came too late (or no stream gave a chunk to judge by)."""
    late = result.worst_lateness_ms
    return late is None or late > lateness_allowed_ms(result.delay_s)


def goals(
    open_result: OpenStreamsResult | None, disconnect_result: DisconnectResult | None
) -> list[Goal]:
    """One target's goals, as (label, holds, the figures): no request failed, peak RSS
    with the streams open, no chunk held back, the upstream closed promptly (p95 and max,
    every cut-off stream seen closed).  A measurement not made gives no line."""
    found: list[Goal] = []
    failed: list[tuple[int, str]] = []
    if open_result is not None:
        held = open_result
        failed.append((held.errors, f"{held.errors:,} of {held.requests:,} streams failed"))
    if disconnect_result is not None:
        cut = disconnect_result
        failed.append((cut.errors, f"{cut.errors} of {cut.times} cut-off streams failed"))
    if failed:
        found.append(("no errors", all(n == 0 for n, _ in failed), ", ".join(t for _, t in failed)))
    if open_result is not None:
        peak = open_result.rss_peak_mb
        found.append(
            (
                f"peak RSS ≤ {RSS_GOAL_MB:.0f} MB with {open_result.requests:,} streams open",
                peak is not None and peak <= RSS_GOAL_MB,
                f"{_mb(open_result.rss_before_mb)} → {_mb(peak)} MB",
            )
        )
        found.append(
            (
                "no chunk held back",
                not chunk_held_back(open_result),
                f"worst chunk {_number(open_result.worst_lateness_ms, '.0f')} ms late "
                f"(allowed {lateness_allowed_ms(open_result.delay_s):.0f}), "
                f"largest gap {_number(open_result.max_gap_s, '.2f')} s "
                f"at one chunk every {open_result.delay_s:g} s",
            )
        )
    if disconnect_result is not None:
        result = disconnect_result
        seen = bool(result.closed_ms) and result.not_closed == 0
        unseen = f", {result.not_closed} never closed" if result.not_closed else ""
        for label, value in (("p95", result.p95_ms), ("max", result.max_ms)):
            found.append(
                (
                    f"upstream closed ≤ {DISCONNECT_GOAL_MS:.0f} ms after the client left "
                    f"({label})",
                    seen and value <= DISCONNECT_GOAL_MS,
                    f"{label} {_number(value, '.1f')} ms over {len(result.closed_ms)}{unseen}",
                )
            )
    return found


def streams_table(
    open_results: Mapping[str, OpenStreamsResult],
    disconnect_results: Mapping[str, DisconnectResult],
) -> str:
    """A Markdown table, a row per target (in the order first named)."""
    names = list(dict.fromkeys([*open_results, *disconnect_results]))
    heading = [
        "target", "streams", "errors", "RSS before → peak (MB)", "max chunk gap (s)",
        "worst lateness (ms)", "disconnect p50 (ms)", "p95 (ms)", "max (ms)", "not closed",
    ]  # fmt: skip
    lines = ["| " + " | ".join(heading) + " |", "|" + "---|" * len(heading)]
    for name in names:
        cells = [name]
        held = open_results.get(name)
        if held is None:
            cells += [NONE] * 5
        else:
            cells += [
                f"{held.requests:,}",
                f"{held.errors:,}",
                f"{_mb(held.rss_before_mb)} → {_mb(held.rss_peak_mb)}",
                _number(held.max_gap_s, ".2f"),
                _number(held.worst_lateness_ms, ".0f"),
            ]
        cut = disconnect_results.get(name)
        if cut is None:
            cells += [NONE] * 4
        else:
            failed = f" ({cut.errors} failed)" if cut.errors else ""
            cells += [
                _number(cut.p50_ms, ".1f"),
                _number(cut.p95_ms, ".1f"),
                _number(cut.max_ms, ".1f"),
                f"{cut.not_closed}{failed}",
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _number(value: float | None, spec: str) -> str:
    return NONE if value is None or math.isnan(value) else format(value, spec)


def _mb(value: float | None) -> str:
    return _number(value, ".0f")
