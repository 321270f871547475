"""Hand-made hostile requests to the public API: wrong types, huge and slow requests,
random tokens, and errors that might tell where the upstreams are.

Each case says what a secure server answers (a status and an error body of the right
shape, never a 5xx); anything else is a finding.  The management API, the console, the
journal and the WebSocket are :mod:`attack.access`'s.
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Callable
from typing import Any

import httpx

from attack import rawhttp
from attack.findings import Row
from attack.target import DOOMED_MODEL, HEADER_TIMEOUT_S, MODEL, Target
from kodify_site.testing import wait_until

CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"
# An answer to a body that is not read must come at once, not after 1 GiB: this is
# generous for a 2-core machine under load and far below any read of the whole body.
QUICK_S = 5.0


def openai_error(response: httpx.Response) -> bool:
    """Whether the body is OpenAI's error shape: ``{"error": {message, type, param, code}}``."""
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return False
    return isinstance(error, dict) and {"message", "type", "param", "code"} <= error.keys()


def describe(response: httpx.Response) -> str:
    return f"{response.status_code} {response.text[:160]!r}"


def expect_error(
    row: Row, response: httpx.Response, status: int, what: str, shape: Callable[..., bool]
) -> None:
    ok = response.status_code == status and shape(response)
    row.expect(ok, f"{what}: expected {status} with an error body, got {describe(response)}")


def chat(**fields: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], **fields}


# Every generation field of the OpenAI API the gateway checks, with a value of a wrong
# type or out of range; each must be a 400, never forwarded and never a 5xx.
WRONG_CHAT_BODIES: dict[str, dict[str, Any]] = {
    "stop: true": chat(stop=True),
    "stop: 5 strings": chat(stop=["a", "b", "c", "d", "e"]),
    "max_tokens: 2**63": chat(max_tokens=2**63),
    "max_tokens: -1": chat(max_tokens=-1),
    "max_completion_tokens: 'many'": chat(max_completion_tokens="many"),
    "n: 1e29": chat(n=1e29),
    "n: 0": chat(n=0),
    "n: above MAX_N": chat(n=1000),
    "best_of: []": chat(best_of=[]),
    "temperature: 'hot'": chat(temperature="hot"),
    "temperature: 1e308": chat(temperature=1e308),
    "top_p: {}": chat(top_p={}),
    "presence_penalty: '0'": chat(presence_penalty="0"),
    "frequency_penalty: 99": chat(frequency_penalty=99),
    "seed: 1.5": chat(seed=1.5),
    "seed: 2**70": chat(seed=2**70),
    "stream: 'yes'": chat(stream="yes"),
    "stream_options: 7": chat(stream=True, stream_options=7),
    "logprobs: 'x'": chat(logprobs="x"),
    "top_logprobs: -3": chat(logprobs=True, top_logprobs=-3),
    "model: 123": chat(model=123),
    "messages: 'hi'": {"model": MODEL, "messages": "hi"},
    "messages: [role 5]": {"model": MODEL, "messages": [{"role": 5, "content": "x"}]},
    "messages missing": {"model": MODEL},
}
WRONG_COMPLETION_BODIES: dict[str, dict[str, Any]] = {
    "prompt: {}": {"model": MODEL, "prompt": {"a": 1}},
    "prompt: [1, 'a']": {"model": MODEL, "prompt": [1, "a"]},
    "suffix: 5": {"model": MODEL, "prompt": "x", "suffix": 5},
    "tabby segments: 'x'": {"language": "python", "segments": "x"},
    "tabby prefix missing": {"language": "python", "segments": {"suffix": "\n"}},
}
NOT_JSON: dict[str, bytes] = {
    "a JSON array": b"[]",
    "cut JSON": b'{"model": ',
    "not UTF-8": b'{"model": "\xff\xfe"}',
    "JSON with a NUL": b'{"model": "a\\u0000b", "messages": []}',
}


def wrong_types(target: Target, client: httpx.Client) -> Row:
    row = Row("hostile: wrong types")
    for name, body in WRONG_CHAT_BODIES.items():
        response = client.post(CHAT, json=body, headers=target.bearer())
        expect_error(row, response, 400, f"chat {name}", openai_error)
    for name, body in WRONG_COMPLETION_BODIES.items():
        response = client.post(COMPLETIONS, json=body, headers=target.bearer())
        expect_error(row, response, 400, f"completions {name}", openai_error)
    for name, raw in NOT_JSON.items():
        headers = {**target.bearer(), "Content-Type": "application/json"}
        response = client.post(CHAT, content=raw, headers=headers)
        expect_error(row, response, 400, f"chat body {name}", openai_error)
    return row


# Paths that must refuse a body over KODIFY_MAX_BODY_BYTES before reading it: the public
# API's consumers count bodies themselves, everything else is Django behind BodyLimit.
OVERSIZED_PATHS = (CHAT, COMPLETIONS, "/admin/login/", "/api/users/", "/journal/", "/api/tokens/")


def huge_bodies(target: Target, client: httpx.Client) -> Row:
    row = Row("hostile: huge bodies")
    address = target.host_port()
    for path in OVERSIZED_PATHS:
        answer = rawhttp.oversized(address, "POST", path, target.bearer(), timeout=QUICK_S * 3)
        row.expect(
            answer.status == 413 and answer.seconds < QUICK_S,
            f"POST {path} announcing 1 GiB, sending 16 KiB: expected 413 within {QUICK_S:g} s, "
            f"got {answer.status} after {answer.seconds:.1f} s {answer.body[:120]!r}",
        )
    # A body just over the limit, sent whole and honestly (the counted path).
    big = chat(messages=[{"role": "user", "content": "x" * (2 * 1024 * 1024)}])
    response = client.post(CHAT, json=big, headers=target.bearer())
    expect_error(row, response, 413, "chat with a 2 MiB body", openai_error)
    # Chunked, without a Content-Length: counted as it comes and cut at the limit.
    chunks = (b"x" * 65536 for _ in range(40))
    headers = {**target.bearer(), "Content-Type": "application/json"}
    response = client.post("/api/users/", content=chunks, headers={**headers, **target.admin()})
    row.expect(
        response.status_code == 413,
        f"chunked 2.5 MiB to /api/users/: expected 413, got {describe(response)}",
    )
    return row


def slow_client(target: Target, client: httpx.Client) -> Row:
    row = Row("hostile: slow client")
    for path in ("/health", CHAT):
        answer = rawhttp.slow_headers(
            target.host_port(), path, interval=0.1, timeout=HEADER_TIMEOUT_S * 4
        )
        row.expect(
            answer.status == 408 and answer.seconds < HEADER_TIMEOUT_S * 2,
            f"{path} head a byte at a time: expected 408 within {HEADER_TIMEOUT_S * 2:g} s "
            f"(KODIFY_HEADER_TIMEOUT={HEADER_TIMEOUT_S:g}), got {answer.status} after "
            f"{answer.seconds:.1f} s",
        )
    return row


def random_token() -> str:
    """A token of Kodify's own shape (``kdf_`` + 8 + ``_`` + 32) that nobody was given."""
    alphabet = string.ascii_letters + string.digits
    lookup = "".join(secrets.choice(alphabet) for _ in range(8))
    return f"kdf_{lookup}_" + "".join(secrets.choice(alphabet) for _ in range(32))


def database_sessions(target: Target) -> int:
    """How many sessions PostgreSQL has opened on the main database so far."""
    import psycopg

    name = target.database_url.rsplit("/", 1)[1]
    with psycopg.connect(target.database_url) as conn:
        found = conn.execute(
            "SELECT sessions FROM pg_stat_database WHERE datname = %s", (name,)
        ).fetchone()
    return int(found[0]) if found else 0


RANDOM_TOKENS = 40


def random_tokens(target: Target, client: httpx.Client) -> Row:
    row = Row("hostile: random tokens")
    before = database_sessions(target)
    for index in range(RANDOM_TOKENS):
        path, body = (CHAT, chat()) if index % 2 else (COMPLETIONS, {"model": MODEL, "prompt": "x"})
        headers = {"Authorization": f"Bearer {random_token()}"}
        response = client.post(path, json=body, headers=headers)
        expect_error(row, response, 401, f"{path} with a random well-formed token", openai_error)
    for header in ("Bearer", "Bearer " + "A" * 5000, "Basic YTpi", "Bearer kdf_", "bearer  x"):
        response = client.get("/v1/models", headers={"Authorization": header})
        expect_error(row, response, 401, f"Authorization {header[:20]!r}", openai_error)
    # Every session this run's own reads opened is counted too (two, here): a server
    # that opened a connection per failed token would add about one per request.
    grown = database_sessions(target) - before
    row.expect(
        grown <= RANDOM_TOKENS // 4,
        f"PostgreSQL sessions grew by {grown} over {RANDOM_TOKENS} refused tokens",
    )
    return row


def upstream_addresses(target: Target, client: httpx.Client) -> Row:
    """Errors caused by an upstream must not tell its address (host:port) to clients."""
    row = Row("hostile: upstream addresses")
    doomed = target.doomed_url.removeprefix("http://")
    live = target.upstream_url.removeprefix("http://")
    # Both workers must know the doomed model before its server goes away.
    served = wait_until(
        lambda: all(
            client.post(CHAT, json=chat(model=DOOMED_MODEL), headers=target.bearer()).status_code
            == 200
            for _ in range(4)
        ),
        60,
    )
    row.expect(bool(served), f"{DOOMED_MODEL} was never served: the case below proves nothing")
    target.doomed.stop()
    for stream in (False, True):
        response = client.post(
            CHAT, json=chat(model=DOOMED_MODEL, stream=stream), headers=target.bearer()
        )
        body = response.text
        row.expect(
            response.status_code in (502, 503, 504)
            and doomed not in body
            and openai_error(response),
            f"{DOOMED_MODEL} down (stream={stream}): expected 502/503/504 without {doomed}, "
            f"got {describe(response)}",
        )
    for status, shape in ((500, None), (502, "plain"), (400, None)):
        fake = {"status": status, **({"error_shape": shape} if shape else {})}
        response = client.post(CHAT, json=chat(fake=fake), headers=target.bearer())
        row.expect(
            response.status_code < 600 and live not in response.text and openai_error(response),
            f"upstream answering {status}: body tells {live} or is not an error: "
            f"{describe(response)}",
        )
    return row


# upstream_addresses stops an upstream for good: run.py runs it after the fuzzing that
# would take its 503s for findings.
CASES: tuple[Callable[[Target, httpx.Client], Row], ...] = (
    wrong_types,
    huge_bodies,
    slow_client,
    random_tokens,
)
