"""The Redis client of the per-user limits (accounts/redis_client.py), with no Redis.

The protocol is checked on bytes: answers parsed, commands packed, and a connection fed
through a fake transport.  The client's connection setup, its reopening and its timeout
run against small asyncio servers on 127.0.0.1.  The limiter that uses this client is
tested against a real Redis in test_limits.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from accounts.redis_client import (
    IncompleteReply,
    RedisClient,
    RedisConnection,
    RedisError,
    pack_command,
    parse_reply,
    script_sha,
)
from kodify_site.testing import WAIT_S, free_port

pytestmark = pytest.mark.smoke

# -- answers and commands, as bytes ----------------------------------------------------

ANSWERS: list[tuple[bytes, Any]] = [
    (b"+OK\r\n", b"OK"),
    (b"+\r\n", b""),
    (b":0\r\n", 0),
    (b":-7\r\n", -7),
    (b":9223372036854775807\r\n", 2**63 - 1),
    (b"$5\r\nhello\r\n", b"hello"),
    (b"$0\r\n\r\n", b""),
    (b"$5\r\nhe\r\no\r\n", b"he\r\no"),  # a bulk string holding CRLF
    (b"$3\r\n\x00\xff\r\r\n", b"\x00\xff\r"),  # any bytes
    (b"$-1\r\n", None),  # null bulk string
    (b"*0\r\n", []),
    (b"*-1\r\n", None),  # null array
    (b"*2\r\n:0\r\n:0\r\n", [0, 0]),  # the acquire script's verdict
    (b"*2\r\n*1\r\n+OK\r\n:-7\r\n", [[b"OK"], -7]),
    (b"*3\r\n$-1\r\n*-1\r\n*2\r\n$1\r\nx\r\n*0\r\n", [None, None, [b"x", []]]),
]


@pytest.mark.parametrize(("data", "value"), ANSWERS)
def test_parse_reply_reads_one_answer_and_says_where_the_next_begins(
    data: bytes, value: Any
) -> None:
    assert parse_reply(bytearray(data), 0) == (value, len(data))
    before = b":1\r\n"
    assert parse_reply(bytearray(before + data + b"+next\r\n"), len(before)) == (
        value,
        len(before) + len(data),
    )


@pytest.mark.parametrize(("data", "value"), ANSWERS)
def test_parse_reply_of_a_cut_answer_asks_for_more(data: bytes, value: Any) -> None:
    for end in range(len(data)):
        with pytest.raises(IncompleteReply):
            parse_reply(bytearray(data[:end]), 0)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"-ERR unknown command 'FOO'\r\n", "ERR unknown command 'FOO'"),
        (b"-NOSCRIPT No matching script.\r\n", "NOSCRIPT No matching script."),
        (b"-ERR \xff\r\n", "ERR \ufffd"),  # not UTF-8: still an error to report
    ],
)
def test_an_error_answer_is_returned_as_a_redis_error(data: bytes, message: str) -> None:
    error, end = parse_reply(bytearray(data), 0)
    assert isinstance(error, RedisError)
    assert (str(error), end) == (message, len(data))
    nested, _ = parse_reply(bytearray(b"*2\r\n" + data + b":1\r\n"), 0)
    assert isinstance(nested[0], RedisError) and nested[1] == 1


@pytest.mark.parametrize("data", [b"!3\r\nfoo\r\n", b"hello\r\n", b"*1\r\n?\r\n"])
def test_parse_reply_refuses_what_is_not_resp2(data: bytes) -> None:
    with pytest.raises(ValueError, match="not a RESP answer"):
        parse_reply(bytearray(data), 0)


@pytest.mark.parametrize(
    ("args", "packed"),
    [
        ((b"PING",), b"*1\r\n$4\r\nPING\r\n"),
        ((b"SET", b"k", b""), b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n"),
        (
            (b"SET", b"a\r\nb", b"\x00\xff"),
            b"*3\r\n$3\r\nSET\r\n$4\r\na\r\nb\r\n$2\r\n\x00\xff\r\n",
        ),
        ((b"ECHO", b"$-1\r\n*2"), b"*2\r\n$4\r\nECHO\r\n$7\r\n$-1\r\n*2\r\n"),
    ],
)
def test_pack_command_sends_any_bytes_as_bulk_strings(
    args: tuple[bytes, ...], packed: bytes
) -> None:
    assert pack_command(args) == packed
    assert parse_reply(bytearray(packed), 0) == (list(args), len(packed))  # read back whole


def test_script_sha_is_the_hex_digest_evalsha_names() -> None:
    assert script_sha("return 1") == b"e0e1f9fabfc9d4800c877a703b823ac0578ff8db"


# -- one connection, through a fake transport ------------------------------------------


class Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []
        self.aborted = False

    def write(self, data: Any) -> None:
        self.written.append(bytes(data))

    def abort(self) -> None:
        self.aborted = True

    def is_closing(self) -> bool:
        return self.aborted

    def close(self) -> None:
        self.aborted = True


def connected() -> tuple[RedisConnection, Transport]:
    connection = RedisConnection(timeout=WAIT_S)
    transport = Transport()
    connection.connection_made(transport)
    return connection, transport


ALL_ANSWERS = b"".join(data for data, _ in ANSWERS)
ALL_VALUES = [value for _, value in ANSWERS]


def chunkings() -> list[tuple[str, list[bytes]]]:
    data = ALL_ANSWERS
    cases = [("one chunk", [data]), ("byte by byte", [data[i : i + 1] for i in range(len(data))])]
    cases += [(f"split at {i}", [data[:i], data[i:]]) for i in range(1, len(data))]
    return cases


async def test_answers_however_split_settle_the_commands_in_order() -> None:
    for name, chunks in chunkings():
        connection, transport = connected()
        futures = [connection.send((b"CMD", b"%d" % n)) for n in range(len(ANSWERS))]
        for chunk in chunks:
            connection.data_received(chunk)
        assert [future.result() for future in futures] == ALL_VALUES, name
        assert not transport.aborted, name


async def test_one_chunk_of_answers_with_errors_settles_each_command() -> None:
    connection, _ = connected()
    futures = [connection.send((b"CMD",)) for _ in range(4)]
    connection.data_received(b":1\r\n-NOSCRIPT No matching script.\r\n$-1\r\n+OK\r\n")
    assert futures[0].result() == 1
    error = futures[1].exception()
    assert isinstance(error, RedisError) and str(error).startswith("NOSCRIPT")
    assert (futures[2].result(), futures[3].result()) == (None, b"OK")


async def test_the_commands_of_one_turn_are_one_write_and_settle_in_order() -> None:
    connection, transport = connected()
    settled: list[int] = []
    futures = [connection.send((b"CMD", b"%d" % n)) for n in range(6)]
    for future in futures:
        future.add_done_callback(lambda done: settled.append(futures.index(done)))
    assert transport.written == []
    await asyncio.sleep(0)  # one turn of the event loop
    assert transport.written == [b"".join(pack_command((b"CMD", b"%d" % n)) for n in range(6))]
    connection.data_received(b"".join(b":%d\r\n" % n for n in range(6)))
    assert await asyncio.gather(*futures) == list(range(6))
    assert settled == list(range(6))
    later = connection.send((b"CMD",))  # a new turn: a write of its own
    await asyncio.sleep(0)
    assert transport.written[1:] == [pack_command((b"CMD",))]
    connection.data_received(b"+OK\r\n")
    assert await later == b"OK"


async def test_the_answer_of_a_cancelled_command_goes_to_no_other() -> None:
    connection, _ = connected()
    first, cancelled, third = (connection.send((b"CMD",)) for _ in range(3))
    cancelled.cancel()  # its caller went away; Redis answers it all the same
    connection.data_received(b":1\r\n:2\r\n:3\r\n")
    assert (first.result(), third.result()) == (1, 3)


async def test_a_lost_connection_fails_every_pending_command() -> None:
    connection, transport = connected()
    pending = [connection.send((b"PING",)) for _ in range(3)]
    connection.data_received(b"+PONG\r\n")
    connection.connection_lost(ConnectionResetError("reset"))
    assert pending[0].result() == b"PONG"
    for future in pending[1:]:
        with pytest.raises(ConnectionError, match="reset"):
            future.result()
    assert transport.aborted
    with pytest.raises(ConnectionError):  # and every command after it
        connection.send((b"PING",)).result()


async def test_a_connection_closed_by_redis_fails_the_pending_commands() -> None:
    connection, _ = connected()
    pending = connection.send((b"PING",))
    connection.connection_lost(None)
    with pytest.raises(ConnectionError, match="Redis closed the connection"):
        pending.result()


async def test_a_garbled_answer_fails_every_pending_command_and_closes() -> None:
    connection, transport = connected()
    pending = [connection.send((b"PING",)) for _ in range(2)]
    connection.data_received(b"!garbage\r\n")
    for future in pending:
        with pytest.raises(ConnectionError, match="not a RESP answer"):
            future.result()
    assert transport.aborted


# -- the client, against small servers -------------------------------------------------


def answer(command: list[bytes]) -> bytes | None:
    """A Redis that knows a few commands; None closes the connection without an answer."""
    name = command[0]
    if name in (b"AUTH", b"SELECT"):
        return b"+OK\r\n"
    if name == b"PING":
        return b"+PONG\r\n"
    if name == b"ECHO":
        return b"$%d\r\n%s\r\n" % (len(command[1]), command[1])
    if name == b"EVALSHA":
        return b"-NOSCRIPT No matching script.\r\n"
    if name == b"EVAL":
        return b":%d\r\n" % len(command[1])
    if name == b"GONE":
        return None
    return b"-ERR unknown command\r\n"


class FakeRedis:
    """Serves :func:`answer`, and records the commands of each connection it accepted."""

    def __init__(self) -> None:
        self.connections: list[list[list[bytes]]] = []

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        commands: list[list[bytes]] = []
        self.connections.append(commands)
        buffer = bytearray()
        with contextlib.closing(writer):
            while data := await reader.read(65536):
                buffer += data
                with contextlib.suppress(IncompleteReply):
                    while buffer:
                        command, end = parse_reply(buffer, 0)
                        del buffer[:end]
                        commands.append(command)
                        reply = answer(command)
                        if reply is None:
                            return
                        writer.write(reply)


@pytest.fixture
async def fake_redis() -> AsyncIterator[tuple[FakeRedis, str]]:
    fake = FakeRedis()
    server = await asyncio.start_server(fake.serve, "127.0.0.1", 0)
    yield fake, f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    server.close()


@pytest.mark.parametrize(
    ("url", "setup"),
    [
        ("redis://{address}", []),
        ("redis://{address}/0", []),
        ("redis://{address}/3", [[b"SELECT", b"3"]]),
        ("redis://:secret@{address}", [[b"AUTH", b"secret"]]),
        ("redis://user:secret@{address}/2", [[b"AUTH", b"user", b"secret"], [b"SELECT", b"2"]]),
    ],
)
async def test_the_client_authenticates_and_selects_as_its_url_says(
    fake_redis: tuple[FakeRedis, str], url: str, setup: list[list[bytes]]
) -> None:
    fake, address = fake_redis
    client = RedisClient(url.format(address=address), timeout=WAIT_S)
    assert await client.send(b"PING") == b"PONG"
    assert fake.connections == [[*setup, [b"PING"]]]
    client.close()


async def test_the_client_opens_a_unix_socket_url() -> None:
    fake = FakeRedis()
    with tempfile.TemporaryDirectory() as directory:
        path = f"{directory}/redis.sock"
        server = await asyncio.start_unix_server(fake.serve, path)
        client = RedisClient(f"unix://{path}?db=1", timeout=WAIT_S)
        assert await client.send(b"ECHO", b"a\r\n\x00") == b"a\r\n\x00"
        assert fake.connections == [[[b"SELECT", b"1"], [b"ECHO", b"a\r\n\x00"]]]
        client.close()
        server.close()


async def test_the_client_pipelines_on_one_connection_opened_once(
    fake_redis: tuple[FakeRedis, str],
) -> None:
    fake, address = fake_redis
    client = RedisClient(f"redis://{address}", timeout=WAIT_S)
    words = [b"%d" % n for n in range(20)]
    # Sent before the connection is open: all wait for the one opening.
    assert await asyncio.gather(*(client.send(b"ECHO", word) for word in words)) == words
    assert await asyncio.gather(*(client.send(b"ECHO", word) for word in words)) == words
    assert len(fake.connections) == 1
    assert fake.connections[0] == [[b"ECHO", word] for word in words * 2]
    client.close()


async def test_the_client_opens_a_new_connection_once_one_is_lost(
    fake_redis: tuple[FakeRedis, str],
) -> None:
    fake, address = fake_redis
    client = RedisClient(f"redis://{address}", timeout=WAIT_S)
    assert await client.send(b"PING") == b"PONG"
    with pytest.raises(ConnectionError):
        await client.send(b"GONE")  # the server hangs up
    assert await client.send(b"PING") == b"PONG"
    assert fake.connections == [[[b"PING"], [b"GONE"]], [[b"PING"]]]
    client.close()


async def test_eval_sends_the_script_when_redis_does_not_know_its_sha(
    fake_redis: tuple[FakeRedis, str],
) -> None:
    fake, address = fake_redis
    client = RedisClient(f"redis://{address}", timeout=WAIT_S)
    script = "return 1"
    assert await client.eval(script_sha(script), script, b"0") == len(script)
    assert fake.connections == [
        [[b"EVALSHA", script_sha(script), b"0"], [b"EVAL", script.encode(), b"0"]]
    ]
    with pytest.raises(RedisError, match="unknown command"):
        await client.send(b"FOO")  # other errors are the caller's
    client.close()


async def test_a_redis_that_never_answers_fails_the_command_after_the_timeout() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # reads everything, answers nothing

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = RedisClient(f"redis://127.0.0.1:{port}/0", timeout=0.2)
    started = time.monotonic()
    pending = [client.send(b"PING"), client.send(b"PING")]
    for future in pending:
        with pytest.raises(ConnectionError, match=r"no answer from Redis within 0\.2 s"):
            await future
    # A generous bound: the machine may be busy.
    assert time.monotonic() - started < WAIT_S
    client.close()
    server.close()


async def test_a_redis_that_cannot_be_reached_fails_the_command() -> None:
    client = RedisClient(f"redis://127.0.0.1:{free_port()}/0", timeout=WAIT_S)
    with pytest.raises(OSError):
        await client.send(b"PING")
    client.close()
