"""Records into journal rows: the answer read back from whole bodies and from streams
split anywhere, secrets masked, texts cut and made storable, the other fields as given."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from django.test import override_settings

from journal.models import Entry
from journal.record import Record
from journal.rows import build_row, read_answer, sse_data

GITHUB = "ghp_" + "A1b2C3d4E5" * 3 + "f6G7h8"


def record(**values: Any) -> Record:
    fields: dict[str, Any] = {
        "request_id": "r-1",
        "endpoint": "/v1/chat/completions",
        "feature": "chat",
        "started_at": 1_790_000_000.25,
        "started": 100.0,
        "request_body": b'{"model":"m","messages":[{"role":"user","content":"hi"}]}',
        "status": 200,
        "first_byte_at": 100.05,
        "finished_at": 100.5,
    }
    fields.update(values)
    return Record(**fields)


def sse(*events: dict[str, Any] | str) -> bytes:
    return b"".join(
        b"data: " + (event.encode() if isinstance(event, str) else orjson.dumps(event)) + b"\n\n"
        for event in events
    )


def chat_chunk(content: str, index: int = 0, **delta: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-7",
        "model": "qwen-coder",
        "choices": [{"index": index, "delta": {"content": content, **delta}}],
    }


USAGE = {"id": "chatcmpl-7", "choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": 3}}
CHAT_STREAM = sse(
    chat_chunk("", role="assistant"),
    chat_chunk("Hello"),
    chat_chunk(", wörld"),  # a two-byte character, to be split across chunks
    chat_chunk("!"),
    USAGE,
    "[DONE]",
)


def split_anywhere(data: bytes, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    cuts = sorted(rng.sample(range(1, len(data)), k=min(40, len(data) - 1)))
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


# -- whole bodies --------------------------------------------------------------------------


def test_a_chat_answer_gives_text_id_tokens_and_model() -> None:
    body = {
        "id": "chatcmpl-1",
        "model": "qwen-coder-7b",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Use a set."}}],
        "usage": {"prompt_tokens": 20, "completion_tokens": 4, "total_tokens": 24},
    }
    row = build_row(record(response_chunks=[orjson.dumps(body)]))
    assert row["response_text"] == "Use a set."
    assert row["response_id"] == "chatcmpl-1"
    assert (row["prompt_tokens"], row["completion_tokens"]) == (20, 4)
    assert row["model"] == "qwen-coder-7b"  # the record named none


def test_the_model_the_client_asked_for_is_kept() -> None:
    body = {"id": "x", "model": "served-name", "choices": [{"message": {"content": "a"}}]}
    row = build_row(record(model="requested", response_chunks=[orjson.dumps(body)]))
    assert row["model"] == "requested"


def test_several_choices_are_separated() -> None:
    body = {
        "id": "cmpl-2",
        "choices": [
            {"index": 1, "text": "return b"},
            {"index": 0, "text": "return a"},
        ],
    }
    answer = read_answer([orjson.dumps(body)], stream=False)
    assert answer.text == "--- choice 0 ---\nreturn a\n\n--- choice 1 ---\nreturn b"


def test_reasoning_and_tool_calls_are_kept_apart_from_the_answer() -> None:
    body = {
        "choices": [
            {
                "message": {
                    "reasoning_content": "The user wants the weather.",
                    "content": "Let me look.",
                    "tool_calls": [
                        {
                            "id": "c1",
                            "function": {"name": "weather", "arguments": '{"city":"Oslo"}'},
                        }
                    ],
                }
            }
        ]
    }
    answer = read_answer([orjson.dumps(body)], stream=False)
    assert answer.text == (
        "[reasoning]\nThe user wants the weather.\n\n[answer]\nLet me look.\n\n"
        '[tool call] weather({"city":"Oslo"})'
    )


@pytest.mark.parametrize(
    "body",
    [
        b"<html>502 Bad Gateway</html>",
        b'{"error": {"message": "model not found", "code": 404}}',
        b"",
    ],
)
def test_a_body_that_is_not_an_answer_is_kept_as_it_came(body: bytes) -> None:
    row = build_row(record(status=502, response_chunks=[body[:7], body[7:]]))
    assert row["response_text"] == body.decode()
    assert row["response_id"] == "" and row["prompt_tokens"] is None


# -- streams ------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_a_stream_split_anywhere_is_put_back_together(seed: int) -> None:
    answer = read_answer(split_anywhere(CHAT_STREAM, seed), stream=True)
    assert answer.text == "Hello, wörld!"
    assert answer.response_id == "chatcmpl-7"
    assert (answer.prompt_tokens, answer.completion_tokens) == (11, 3)


def test_a_stream_in_single_bytes_with_crlf_line_ends() -> None:
    data = CHAT_STREAM.replace(b"\n", b"\r\n")
    answer = read_answer([data[i : i + 1] for i in range(len(data))], stream=True)
    assert answer.text == "Hello, wörld!"


def test_interleaved_completion_choices_are_reassembled_per_index() -> None:
    events = [
        {"id": "cmpl-9", "choices": [{"index": i % 2, "text": piece}]}
        for i, piece in enumerate(["def ", "class ", "f():", "C:", " pass", " pass"])
    ]
    answer = read_answer([sse(*events, "[DONE]")], stream=True)
    assert answer.text == "--- choice 0 ---\ndef f(): pass\n\n--- choice 1 ---\nclass C: pass"


def test_streamed_tool_call_arguments_are_joined() -> None:
    call = {"index": 0, "id": "c1", "function": {"name": "search", "arguments": ""}}
    events = [
        chat_chunk("", tool_calls=[call]),
        chat_chunk("", tool_calls=[{"index": 0, "function": {"arguments": '{"q":'}}]),
        chat_chunk("", tool_calls=[{"index": 0, "function": {"arguments": '"sets"}'}}]),
    ]
    answer = read_answer([sse(*events)], stream=True)
    assert answer.text == '[tool call] search({"q":"sets"})'


def test_a_stream_that_was_an_error_body_is_kept() -> None:
    body = b'{"error": {"message": "too many tokens"}}'
    assert read_answer([body], stream=True).text == body.decode()


def test_a_stream_cut_off_keeps_what_came() -> None:
    data = sse(chat_chunk("par"), chat_chunk("tial"))[:-3] + b'"}'  # last event broken
    assert read_answer([data], stream=True).text == "par"


def test_a_long_stream_in_small_chunks_is_read_in_one_pass() -> None:
    # Joining and splitting once is linear; re-scanning a growing buffer per chunk would
    # take minutes here.
    data = sse(*(chat_chunk(f"{i},") for i in range(20_000)), USAGE, "[DONE]")
    chunks = [data[i : i + 5] for i in range(0, len(data), 5)]
    answer = read_answer(chunks, stream=True)
    assert answer.text == "".join(f"{i}," for i in range(20_000))


def test_sse_fields_other_than_data_are_ignored() -> None:
    data = b": keep-alive\n\nevent: message\nid: 4\ndata: one\ndata: two\n\nretry: 10\n\n"
    assert sse_data(data) == [b"one\ntwo"]


# -- the row ------------------------------------------------------------------------------


def test_the_row_has_every_entry_field_and_the_facts_of_the_record() -> None:
    rec = record(
        auth_mode="token",
        user_id=7,
        username="dev7",
        token_id=3,
        client_ip="10.1.2.3",
        user_agent="Node.js/v20 tabby-agent/1.7.0 IntelliJ-IDEA/2024.1",
        upstream="http://vllm:8000",
        language="python",
        stream=True,
        response_chunks=[CHAT_STREAM],
        cancelled=True,
        error="",
    )
    row = build_row(rec)
    fields = {f.name for f in Entry._meta.get_fields() if f.concrete and f.name != "id"}
    assert set(row) == fields
    assert row["created_at"] == datetime(2026, 9, 21, 14, 13, 20, 250000, tzinfo=UTC)
    assert row["ttft_ms"] == pytest.approx(50.0)
    assert row["latency_ms"] == pytest.approx(500.0)
    assert (row["client_name"], row["client_version"]) == ("tabby-agent (IntelliJ IDEA)", "1.7.0")
    assert row["client_ip"] == "10.1.2.3"
    assert row["model"] == "qwen-coder" and row["response_text"] == "Hello, wörld!"
    assert row["cancelled"] is True and row["stream"] is True
    assert row["redactions"] == 0 and row["truncated"] is False
    assert json.loads(row["request_body"])["messages"][0]["content"] == "hi"


def test_without_a_first_byte_there_is_no_ttft() -> None:
    row = build_row(record(first_byte_at=None, finished_at=100.2, status=499))
    assert row["ttft_ms"] is None
    assert row["latency_ms"] == pytest.approx(200.0)


def test_secrets_are_masked_in_the_prompt_the_answer_and_the_error() -> None:
    prompt = {"messages": [{"role": "user", "content": f"why does\ntoken = '{GITHUB}'\nfail?"}]}
    answer = {"choices": [{"message": {"content": f"Rotate {GITHUB} now."}}]}
    row = build_row(
        record(
            request_body=orjson.dumps(prompt),
            response_chunks=[orjson.dumps(answer)],
            error=f"upstream echoed password=hunter22 and {GITHUB}",
        )
    )
    assert GITHUB not in row["request_body"] + row["response_text"] + row["error"]
    assert "hunter22" not in row["error"]
    assert row["redactions"] == 4
    content = json.loads(row["request_body"])["messages"][0]["content"]
    assert content == "why does\ntoken = '[REDACTED:github_token]'\nfail?"
    assert row["response_text"] == "Rotate [REDACTED:github_token] now."


@override_settings(KODIFY_JOURNAL_MAX_TEXT=1000)
def test_long_texts_are_cut_and_marked() -> None:
    body = orjson.dumps({"prompt": "x" * 5000})
    answer = {"choices": [{"text": "y" * 999}]}
    row = build_row(record(request_body=body, response_chunks=[orjson.dumps(answer)]))
    assert len(row["request_body"]) == 1000 and row["truncated"] is True
    assert row["response_text"] == "y" * 999


@override_settings(KODIFY_JOURNAL_MAX_TEXT=1000)
def test_a_secret_across_the_limit_is_masked_whole() -> None:
    body = ("p" * 980 + f" {GITHUB} tail").encode()
    row = build_row(record(request_body=body))
    assert row["request_body"].startswith("p" * 980 + " [REDACTED:git")
    assert "ghp_" not in row["request_body"] and row["truncated"] is True


def test_texts_are_made_storable() -> None:
    lone_surrogate = b'{"choices": [{"text": "a\\ud800b\\u0000c"}]}'
    row = build_row(
        record(
            request_body=b"bad \xff utf-8 and a NUL \x00 here",
            response_chunks=[lone_surrogate],
            client_ip="unix:/run/kodify.sock",
            user_agent="curl/8.5.0 " + "z" * 600,
            model="m" * 300,
        )
    )
    assert row["request_body"] == "bad \ufffd utf-8 and a NUL \ufffd here"
    assert row["response_text"] == "a?b\ufffdc"
    row["response_text"].encode("utf-8")  # PostgreSQL would refuse a lone surrogate
    assert row["client_ip"] is None
    assert len(row["user_agent"]) == 512 and len(row["model"]) == 200
    assert row["client_name"] == "curl"


@pytest.mark.django_db
def test_a_row_can_be_stored() -> None:
    row = build_row(record(response_chunks=[CHAT_STREAM], stream=True, client_ip="::1"))
    entry = Entry.objects.create(**row)
    entry.refresh_from_db()
    assert entry.response_text == "Hello, wörld!" and entry.client_ip == "::1"
