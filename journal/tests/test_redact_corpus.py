"""Secret masking over a corpus of real-format secrets, each in every place the journal
stores text from: a prompt, a JSON document in a prompt, a field of the request body,
an answer, and an answer streamed in pieces (the stream's bytes split anywhere).  What
would be stored keeps no 8 characters in a row of a secret; ordinary code comes out as
it went in."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest

from journal import redact
from journal.record import Record
from journal.rows import build_row
from journal.tests.secret_corpus import (
    AWS_DOCUMENTED_EXAMPLE,
    AWS_SECRET_2,
    HARMLESS,
    OPENSSH_LINES,
    SECRETS,
    Secret,
    leaked,
)

PLAIN = re.compile(r"[!#-\[\]-~]+")  # printable ASCII, no space, quote or backslash


@pytest.fixture(autouse=True)
def fresh_detectors() -> Iterator[None]:
    redact.reset()
    yield
    redact.reset()


def record(body: dict[str, Any], chunks: list[bytes], *, stream: bool = False) -> Record:
    return Record(
        request_id="r-1",
        endpoint="/v1/chat/completions",
        feature="chat",
        request_body=orjson.dumps(body),
        response_chunks=chunks,
        stream=stream,
        status=200,
    )


def request(content: str, **extra: Any) -> dict[str, Any]:
    messages = [{"role": "user", "content": content}]
    return {"model": "qwen-coder", "messages": messages, **extra}


def answer_body(content: str) -> bytes:
    message = {"role": "assistant", "content": content}
    return orjson.dumps(
        {"id": "chatcmpl-1", "model": "qwen-coder", "choices": [{"index": 0, "message": message}]}
    )


def stream_chunks(content: str, part: str = "content") -> list[bytes]:
    """``content`` as a chat stream of 1 to 5 characters an event (a secret spans many),
    its bytes cut into chunks of 7 to 31 bytes (events and lines split anywhere)."""
    pieces, at, size = [], 0, 0
    while at < len(content):
        size = size % 5 + 1
        pieces.append(content[at : at + size])
        at += size
    first = {"role": "assistant", "content": ""}
    events = [{"id": "chatcmpl-2", "model": "qwen-coder", "choices": [{"delta": first}]}]
    events += [{"id": "chatcmpl-2", "choices": [{"delta": {part: piece}}]} for piece in pieces]
    raw = b"".join(b"data: " + orjson.dumps(event) + b"\n\n" for event in events)
    raw += b"data: [DONE]\n\n"
    chunks, at, size = [], 0, 0
    while at < len(raw):
        size = size % 25 + 7
        chunks.append(raw[at : at + size])
        at += size
    return chunks


# Where a secret is placed: a function of it that gives the record and the column
# (``request_body`` or ``response_text``) where what would be stored is read.
Place = Callable[[str], tuple[Record, str]]
ANSWER = "Here you go:\n\n{}\n\nAnything else?"


def in_prompt(text: str) -> tuple[Record, str]:
    content = f"Why does this fail?\n{text}\nThanks!"
    return record(request(content), [answer_body("ok")]), "request_body"


def in_json_in_prompt(text: str) -> tuple[Record, str]:
    # the secret is a string value of a JSON document pasted into the prompt: escaped twice
    document = json.dumps({"service": {"value": text, "region": "eu-west-1"}}, indent=2)
    content = f"My settings:\n```json\n{document}\n```"
    return record(request(content), [answer_body("ok")]), "request_body"


def in_body_field(text: str) -> tuple[Record, str]:
    return record(request("hi", metadata={"note": text}), [answer_body("ok")]), "request_body"


def in_answer(text: str) -> tuple[Record, str]:
    return record(request("hi"), [answer_body(ANSWER.format(text))]), "response_text"


def in_stream(text: str) -> tuple[Record, str]:
    chunks = stream_chunks(ANSWER.format(text))
    return record(request("hi", stream=True), chunks, stream=True), "response_text"


def in_reasoning_stream(text: str) -> tuple[Record, str]:
    # reasoning takes the journal's full stream reader, not the quick one for plain text
    chunks = stream_chunks(ANSWER.format(text), part="reasoning_content")
    return record(request("hi", stream=True), chunks, stream=True), "response_text"


PLACES: dict[str, Place] = {
    "prompt": in_prompt,
    "json_in_prompt": in_json_in_prompt,
    "body_field": in_body_field,
    "answer": in_answer,
    "stream": in_stream,
    "reasoning_stream": in_reasoning_stream,
}


def test_the_corpus_is_well_formed() -> None:
    kinds = [secret.kind for secret in SECRETS]
    assert len(kinds) == len(set(kinds))
    for secret in SECRETS:
        for part in secret.body:
            # printable, and nothing JSON escapes: a piece of it is found in raw JSON text
            assert PLAIN.fullmatch(part), secret.kind
            assert part in secret.text, secret.kind


@pytest.mark.parametrize("place", PLACES)
@pytest.mark.parametrize("secret", SECRETS, ids=lambda secret: secret.kind)
def test_no_piece_of_a_secret_is_stored(secret: Secret, place: str) -> None:
    rec, column = PLACES[place](secret.text)
    row = build_row(rec)
    stored = row[column]
    assert not leaked(stored, secret), stored
    assert row["redactions"] >= 1
    assert "[REDACTED:" in stored
    if column == "request_body":
        json.loads(stored)  # masked JSON is still JSON


@pytest.mark.parametrize("text", HARMLESS)
def test_ordinary_code_is_stored_as_it_is(text: str) -> None:
    assert redact.redact(text) == (text, 0)
    for place in PLACES:
        rec, column = PLACES[place](text)
        row = build_row(rec)
        expected = rec.request_body.decode() if column == "request_body" else None
        assert row["redactions"] == 0, (place, row[column])
        if expected is not None:
            assert row[column] == expected
        else:
            assert text in row[column]


def test_a_secret_split_across_stream_events_is_masked_whole() -> None:
    token = next(secret.text for secret in SECRETS if secret.kind == "sk_live_dashed")
    chunks = stream_chunks(f"use {token} here")
    assert all(token not in chunk.decode() for chunk in chunks)  # no event holds it whole
    row = build_row(record(request("hi", stream=True), chunks, stream=True))
    assert row["response_text"] == "use [REDACTED:sk_api_key] here"


def test_json_that_escapes_slashes_is_masked_too() -> None:
    # PHP's json_encode and some Java libraries write "/" as "\/"
    body = json.dumps({"prompt": f"key:\n{AWS_SECRET_2}\nand {AWS_DOCUMENTED_EXAMPLE}"})
    escaped = body.replace("/", "\\/")
    masked, count = redact.redact(escaped)
    assert count == 2
    assert json.loads(masked) == {
        "prompt": "key:\n[REDACTED:aws_secret_key]\nand [REDACTED:aws_secret_key]"
    }


def test_a_cut_off_private_key_ends_at_its_last_line() -> None:
    key = "\n".join(["-----BEGIN " + "OPENSSH PRIVATE KEY-----", *OPENSSH_LINES[:2]])
    # (a lone word of 8 letters or more on the next line would be taken for the last one)
    for tail in ("\nExplanation of the error above", "\nThanks a lot\n", "\n\nWhat is wrong?"):
        assert redact.redact(key + tail) == ("[REDACTED:private_key]" + tail, 1)
        body = json.dumps({"p": key + tail})
        assert json.loads(redact.redact(body)[0]) == {"p": "[REDACTED:private_key]" + tail}


def test_many_line_breaks_after_a_begin_line_are_quick() -> None:
    # each "\\n" may be read two ways: the pattern must not try every combination
    text = json.dumps(json.dumps("-----BEGIN " + "PRIVATE KEY-----" + "\n" * 5000 + "x"))
    assert redact.redact(text)[1] == 1
