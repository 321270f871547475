"""The short way through a simple stream reads exactly what the full reader reads."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from journal import rows

pytestmark = pytest.mark.smoke


def stream(*payloads: Any, done: bool = True) -> bytes:
    raw = b"".join(b"data: " + orjson.dumps(p) + b"\n\n" for p in payloads)
    return raw + (b"data: [DONE]\n\n" if done else b"")


def chat(*contents: str | None, role: bool = True) -> list[dict[str, Any]]:
    events = []
    for i, content in enumerate(contents):
        delta: dict[str, Any] = {"content": content}
        if role and i == 0:
            delta = {"role": "assistant", **delta}
        events.append({"id": "chatcmpl-1", "model": "m", "choices": [{"index": 0, "delta": delta}]})
    return events


def text(*pieces: str) -> list[dict[str, Any]]:
    return [
        {"id": "cmpl-1", "model": "m", "choices": [{"index": 0, "text": piece}]} for piece in pieces
    ]


USAGE = {"id": "x", "choices": [], "usage": {"prompt_tokens": 4, "completion_tokens": 9}}

SIMPLE = {
    "chat": stream(*chat("", "Hello", ", world"), USAGE),
    "chat escapes": stream(*chat('say "hi"\n', "tab\there \\ back", "é ☃ 😀")),
    "completions": stream(*text("def f(", 'x="}"', "):\n    pass"), USAGE),
    "cut short": stream(*text("one", "two"))[:-20],
    "no role": stream(*chat("x", "y", role=False)),
}

NOT_SIMPLE = {
    # An event without content text: the counts differ, so the full reader decides.
    "chat null content": stream(*chat("a", None, "b")),
    "two choices": stream(
        {"choices": [{"index": 0, "text": "a"}]}, {"choices": [{"index": 1, "text": "b"}]}
    ),
    "tool call": stream(
        {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {}}]}}]}
    ),
    "reasoning": stream(
        {"choices": [{"index": 0, "delta": {"reasoning_content": "hmm", "content": "x"}}]}
    ),
    "error": stream(*text("a"), {"error": {"message": "boom"}}),
}


@pytest.mark.parametrize("name", SIMPLE)
def test_simple_streams_read_alike(name: str) -> None:
    raw = SIMPLE[name]
    fast = rows._simple_stream_answer(raw)
    assert fast is not None, "the short way was not taken"
    reader = rows._Reader()
    for obj in rows._loads_all([d for d in rows.sse_data(raw) if d.strip() != b"[DONE]"]):
        reader.take(obj)
    assert fast == reader.result(raw)


@pytest.mark.parametrize("name", NOT_SIMPLE)
def test_other_streams_take_the_full_reader(name: str) -> None:
    assert rows._simple_stream_answer(NOT_SIMPLE[name]) is None
