"""The usage event Kodify asked for is withheld, however the upstream splits its stream."""

from __future__ import annotations

import orjson
import pytest

from gateway.proxy import _UsageFilter

pytestmark = pytest.mark.smoke


def event(payload: object) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


CONTENT = [
    event({"id": "c1", "choices": [{"index": 0, "delta": {"content": f"t{i}"}}], "usage": None})
    for i in range(3)
]
USAGE = event({"id": "c1", "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 3}})
DONE = b"data: [DONE]\n\n"
STREAM = b"".join(CONTENT) + USAGE + DONE
EXPECTED = b"".join(CONTENT) + DONE


def run(pieces: list[bytes]) -> bytes:
    usage_filter = _UsageFilter()
    out = b"".join(usage_filter.feed(piece) for piece in pieces)
    return out + usage_filter.pending


@pytest.mark.parametrize("size", [1, 2, 3, 7, 16, 50, len(STREAM)])
def test_any_split_of_the_stream_loses_only_the_usage_event(size: int) -> None:
    pieces = [STREAM[i : i + size] for i in range(0, len(STREAM), size)]
    assert run(pieces) == EXPECTED


def test_complete_events_pass_at_once_and_only_an_unfinished_tail_waits() -> None:
    usage_filter = _UsageFilter()
    first, tail = CONTENT[0], CONTENT[1][:10]
    assert usage_filter.feed(first + tail) == first
    assert usage_filter.pending == tail


def test_crlf_framed_events_are_understood() -> None:
    stream = STREAM.replace(b"\n\n", b"\r\n\r\n")
    out = run([stream[i : i + 9] for i in range(0, len(stream), 9)])
    assert b'"usage":{' not in out
    assert out.count(b"data: ") == 4


def test_an_event_that_only_mentions_usage_in_its_text_is_kept() -> None:
    chatty = event({"choices": [{"index": 0, "delta": {"content": '"usage": {}'}}]})
    assert run([chatty + USAGE + DONE]) == chatty + DONE


def test_a_usage_event_that_still_has_choices_is_kept() -> None:
    # vLLM's continuous usage stats put usage on every content event: those stay.
    continuous = event({"choices": [{"index": 0, "delta": {"content": "x"}}], "usage": {"a": 1}})
    assert run([continuous]) == continuous
