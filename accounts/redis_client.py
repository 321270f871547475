"""A small asynchronous Redis client: one pipelined connection per event loop.

It is what :class:`accounts.limits.RedisLimiter` talks to Redis with, and it knows only
what that needs: RESP2 answers, commands sent as arrays of bulk strings, a TCP (TLS for
``rediss://``) or Unix socket connection with ``AUTH`` and ``SELECT`` from the URL, and
``EVALSHA`` falling back to ``EVAL``.  It is not redis-py's client because of redis-py's
CPU cost per command at the gateway (the figures are in
:class:`~accounts.limits.RedisLimiter`'s docstring); redis-py only reads the URL.

* :func:`parse_reply` and :func:`pack_command`: the protocol, read and written.
* :class:`RedisConnection`: an :class:`asyncio.Protocol` that writes the commands of one
  turn of the event loop at once and settles their futures in order as answers come.
* :class:`RedisClient`: one event loop's connection, opened on first use and again once
  lost.

An error answer of Redis is raised as a :class:`RedisError`.  An answer late by the
client's ``timeout``, or a lost connection, fails every pending command with
:class:`ConnectionError`; opening a connection can fail with any :class:`OSError`.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import deque
from typing import Any, cast


def script_sha(script: str) -> bytes:
    """The hex SHA-1 of a Lua script, as EVALSHA names it."""
    return hashlib.sha1(script.encode(), usedforsecurity=False).hexdigest().encode()


class RedisError(Exception):
    """An error answer of Redis (``-ERR …``, ``-NOSCRIPT …``)."""


class IncompleteReply(Exception):
    """The buffer ends before the answer does: wait for more bytes."""


def parse_reply(buffer: bytearray, start: int) -> tuple[Any, int]:
    """One RESP2 answer at ``start``: its value and where the next one begins.

    Raises IncompleteReply when the buffer ends first.
    """
    end = buffer.find(b"\r\n", start)
    if end < 0:
        raise IncompleteReply
    kind, line, after = buffer[start], bytes(buffer[start + 1 : end]), end + 2
    if kind == 0x3A:  # ":" integer
        return int(line), after
    if kind == 0x2B:  # "+" simple string
        return line, after
    if kind == 0x2D:  # "-" error
        return RedisError(line.decode("utf-8", "replace")), after
    if kind == 0x24:  # "$" bulk string
        size = int(line)
        if size < 0:
            return None, after
        if len(buffer) < after + size + 2:
            raise IncompleteReply
        return bytes(buffer[after : after + size]), after + size + 2
    if kind == 0x2A:  # "*" array
        count = int(line)
        if count < 0:
            return None, after
        items = []
        for _ in range(count):
            item, after = parse_reply(buffer, after)
            items.append(item)
        return items, after
    raise ValueError(f"not a RESP answer: {bytes(buffer[start : start + 20])!r}")


def pack_command(args: tuple[bytes, ...]) -> bytes:
    """A command as Redis reads it: an array of bulk strings, so any bytes may be sent."""
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


class RedisConnection(asyncio.Protocol):
    """One connection to Redis with commands pipelined on it.

    The commands of one turn of the event loop are written together; each gets a future,
    and as Redis answers in order, the answers settle the futures in order.  An answer
    late by ``timeout`` (or a lost connection) fails every pending command and closes the
    connection.
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.transport: asyncio.Transport | None = None
        self.loop = asyncio.get_running_loop()
        self.lost: BaseException | None = None
        self._buffer = bytearray()
        self._out: list[bytes] = []
        self._waiting: deque[tuple[float, asyncio.Future[Any]]] = deque()  # sent when, for whom
        self._watchdog: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(exc or ConnectionError("Redis closed the connection"))

    def _fail(self, exc: BaseException) -> None:
        if self.lost is None:
            self.lost = exc
        waiting, self._waiting = self._waiting, deque()
        for _, future in waiting:
            if not future.done():
                future.set_exception(ConnectionError(f"Redis connection lost: {exc}"))
        if self._watchdog is not None:
            self._watchdog.cancel()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.abort()

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        done = 0
        try:
            while self._waiting and done < len(self._buffer):
                value, done = parse_reply(self._buffer, done)
                _, future = self._waiting.popleft()
                if future.done():  # its caller was cancelled
                    continue
                if isinstance(value, RedisError):
                    future.set_exception(value)
                else:
                    future.set_result(value)
        except IncompleteReply:
            pass
        except ValueError as exc:
            self._fail(exc)
            return
        if done:
            del self._buffer[:done]

    def send(self, args: tuple[bytes, ...], *, now: bool = False) -> asyncio.Future[Any]:
        """Queue a command (``now``: write it, and what was queued before it, at once)."""
        future: asyncio.Future[Any] = self.loop.create_future()
        if self.lost is not None:
            future.set_exception(ConnectionError(f"Redis connection lost: {self.lost}"))
        else:
            self._queue(args, future)
            if now:
                self._flush()
        return future

    def _queue(self, args: tuple[bytes, ...], future: asyncio.Future[Any]) -> None:
        loop = self.loop
        if not self._out:
            loop.call_soon(self._flush)
        self._out.append(pack_command(args))
        self._waiting.append((loop.time(), future))
        if self._watchdog is None:
            self._watchdog = loop.call_later(self.timeout, self._check)

    def _flush(self) -> None:
        # One write for all the commands of this turn of the event loop: a system call
        # per command was most of this class's cost under load.
        out, self._out = self._out, []
        if out and self.transport is not None and self.lost is None:
            self.transport.write(b"".join(out))

    def _check(self) -> None:
        self._watchdog = None
        if not self._waiting:
            return
        loop = self.loop
        late = loop.time() - self._waiting[0][0]
        if late >= self.timeout:
            self._fail(TimeoutError(f"no answer from Redis within {self.timeout:g} s"))
        else:
            self._watchdog = loop.call_later(self.timeout - late, self._check)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class RedisClient:
    """This event loop's connection to Redis, opened on first use and again once lost."""

    def __init__(self, url: str, timeout: float) -> None:
        from redis.connection import parse_url

        self.options = parse_url(url)
        self.tls = url.startswith("rediss:")
        self.timeout = timeout
        self._connection: RedisConnection | None = None
        self._opening: asyncio.Task[RedisConnection] | None = None

    def send(self, *args: bytes, now: bool = False) -> asyncio.Future[Any]:
        """The command's answer to come; ``now`` writes it before returning (when the
        connection is open), so that it reaches Redis before anything this process sends
        elsewhere afterwards."""
        connection = self._connection
        if connection is not None and connection.lost is None:
            return connection.send(args, now=now)
        return asyncio.ensure_future(self._send_when_open(args))

    async def _send_when_open(self, args: tuple[bytes, ...]) -> Any:
        opening = self._opening
        if opening is None:
            opening = self._opening = asyncio.get_running_loop().create_task(self._open())
        try:
            connection = await asyncio.shield(opening)
        finally:
            if opening.done() and self._opening is opening:
                self._opening = None
        self._connection = connection
        return await connection.send(args)

    async def _open(self) -> RedisConnection:
        loop = asyncio.get_running_loop()
        options = self.options
        async with asyncio.timeout(self.timeout):
            if "path" in options:
                _, connection = await loop.create_unix_connection(
                    lambda: RedisConnection(self.timeout), options["path"]
                )
            else:
                ssl_context = None
                if self.tls:
                    import ssl

                    ssl_context = ssl.create_default_context()
                _, connection = await loop.create_connection(
                    lambda: RedisConnection(self.timeout),
                    options.get("host", "localhost"),
                    options.get("port", 6379),
                    ssl=ssl_context,
                )
            try:
                if options.get("password"):
                    credentials = [options.get("username"), options["password"]]
                    await connection.send(
                        (b"AUTH", *(str(c).encode() for c in credentials if c is not None))
                    )
                if options.get("db"):
                    await connection.send((b"SELECT", b"%d" % int(options["db"])))
            except BaseException:
                connection.close()
                raise
        return connection

    async def eval(self, sha: bytes, script: str, *args: bytes) -> Any:
        """EVALSHA, and EVAL when Redis does not know the script (new or flushed)."""
        try:
            return await self.send(b"EVALSHA", sha, *args)
        except RedisError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
        return await self.send(b"EVAL", script.encode(), *args)

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
        self._connection = None
