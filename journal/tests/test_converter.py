"""Records become rows in a helper process, with the server's settings, and a helper that
dies costs nothing but a fallback to the writer's own thread."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from journal.converter import ProcessConverter
from journal.record import Record
from journal.rows import build_row

pytestmark = pytest.mark.smoke

AWS_KEY = "AKIAIOSFODNN7EXAMPLE"


def sse(*payloads: Any) -> list[bytes]:
    return [b"data: " + orjson.dumps(p) + b"\n\n" for p in payloads] + [b"data: [DONE]\n\n"]


def records() -> list[Record]:
    stream = Record(
        request_id="conv-stream",
        endpoint="/v1/chat/completions",
        feature="chat",
        stream=True,
        status=200,
        request_body=orjson.dumps({"messages": [{"role": "user", "content": f"key {AWS_KEY}"}]}),
        response_chunks=sse(
            {"id": "c1", "choices": [{"index": 0, "delta": {"content": "Hello"}}]},
            {"id": "c1", "choices": [{"index": 0, "delta": {"content": " world"}}]},
            {"id": "c1", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}},
        ),
        finished_at=1.0,
    )
    whole = Record(
        request_id="conv-whole",
        endpoint="/v1/completions",
        feature="completion",
        status=200,
        request_body=b'{"prompt": "def f(" }',
        response_chunks=[orjson.dumps({"id": "x", "choices": [{"index": 0, "text": "a, b)"}]})],
        user_agent="OpenAI/Python 1.50.0",
        finished_at=1.0,
    )
    return [stream, whole]


@pytest.fixture
def converter() -> Iterator[ProcessConverter]:
    converter = ProcessConverter()
    yield converter
    converter.close()


def test_the_helper_process_makes_the_same_rows_as_the_writer_thread(
    converter: ProcessConverter,
) -> None:
    batch = records()
    converted = converter.convert(batch)
    assert converted is not None
    assert [ok for ok, _ in converted] == [True, True]
    rows = [row for _, row in converted]
    assert rows == [build_row(rec) for rec in batch]
    assert rows[0]["response_text"] == "Hello world"
    assert AWS_KEY not in rows[0]["request_body"]
    assert rows[1]["client_name"]


def test_the_helper_uses_the_server_process_settings(
    converter: ProcessConverter, settings: Any
) -> None:
    settings.KODIFY_JOURNAL_REDACT_SKIP = ("aws_key",)
    converted = converter.convert(records()[:1])
    assert converted is not None
    assert AWS_KEY in converted[0][1]["request_body"]


def test_a_dead_helper_means_a_fallback_then_a_new_helper(
    converter: ProcessConverter, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert converter.convert(records()) is not None
    pool = converter._pool
    assert pool is not None
    for process in list(pool._processes.values()):
        assert process.pid is not None
        os.kill(process.pid, signal.SIGKILL)
    assert converter.convert(records()) is None  # the caller converts in its own thread
    monkeypatch.setattr("journal.converter.RESTART_AFTER_SECONDS", 0.0)
    converter._retry_at = 0.0
    again = converter.convert(records())
    assert again is not None and again[0][1]["response_text"] == "Hello world"


@pytest.mark.skipif(
    not os.environ.get("DB_URL"),
    reason="the SQLite test database is in memory, out of the helper process's reach",
)
@pytest.mark.django_db(transaction=True)
def test_the_helper_stores_in_the_server_database_and_returns_summaries(
    converter: ProcessConverter,
) -> None:
    from journal.models import Entry

    batch = records()
    stored = converter.store(batch, "default")
    assert stored is not None and stored.outcome == "stored"
    assert [summary["request_id"] for summary in stored.rows] == ["conv-stream", "conv-whole"]
    assert "request_body" not in stored.rows[0]  # summaries only: the rows stay in the helper
    assert Entry.objects.get(request_id="conv-stream").response_text == "Hello world"
    # The same batch again (an acknowledgement lost): stored once, no error.
    again = converter.store(batch, "default")
    assert again is not None and again.outcome == "stored"
    assert Entry.objects.filter(request_id__startswith="conv-").count() == 2
