"""``python -m bench.journal_record``: what ``journal.recorder.record`` costs the event loop.

The gateway calls ``record`` once per request, on the event loop.  This times it (µs per
call, the median of ``--repeat`` rounds of ``--number`` calls) for a realistic record: a
chat request with a prompt of a few KB and a streamed answer of ``--chunks`` SSE chunks.
The writer's thread is not started, so only the hand-over is measured (the queue is
emptied between rounds).  Runs on the embedded SQLite settings in a temporary data dir.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import timeit
import uuid
from collections.abc import Sequence


def realistic_record(prompt_bytes: int, chunks: int) -> object:
    from journal.record import Record

    prompt = ("def handler(event, context):\n    return event  # " * 200)[:prompt_bytes]
    body = (
        b'{"model":"fake-model","stream":true,"messages":[{"role":"user","content":"'
        + prompt.encode()
        + b'"}]}'
    )
    sse = [
        b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","choices":[{"index":0,'
        b'"delta":{"content":"token%d "}}]}\n\n' % n
        for n in range(chunks)
    ]
    return Record(
        request_id=uuid.uuid4().hex,
        endpoint="/v1/chat/completions",
        feature="chat",
        auth_mode="token",
        user_id=7,
        username="alice",
        token_id=3,
        client_ip="10.0.0.7",
        user_agent="OpenAI/Python 1.99.0",
        model="fake-model",
        upstream="http://127.0.0.1:8000",
        stream=True,
        request_body=body,
        response_chunks=[*sse, b"data: [DONE]\n\n"],
        status=200,
        first_byte_at=1.0,
        finished_at=2.0,
    )


def measure(number: int, repeat: int, prompt_bytes: int, chunks: int) -> list[float]:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kodify_site.settings")
    django.setup()
    from journal import recorder
    from journal.writer import JournalWriter

    loop = asyncio.new_event_loop()
    writer = JournalWriter(queue_size=10_000_000, loop=loop)
    recorder._writer, recorder._writer_pid, recorder._logs = writer, os.getpid(), True
    rec = realistic_record(prompt_bytes, chunks)
    record = recorder.record
    rounds = []
    try:
        for _ in range(repeat):
            seconds = timeit.timeit(lambda: record(rec), number=number)  # type: ignore[arg-type]
            rounds.append(seconds / number * 1e6)
            writer._pending.clear()
            handoff = getattr(writer, "handoff", None)  # its file too, where there is one
            if handoff is not None:
                handoff.done(handoff.cut(writer._pending)[1])
    finally:
        recorder._writer = None
        writer._pending.clear()
        writer.stop(1.0)
        loop.close()
    return rounds


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--number", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--prompt-bytes", type=int, default=4000)
    parser.add_argument("--chunks", type=int, default=60)
    args = parser.parse_args(argv)
    data = tempfile.mkdtemp(prefix="kodify-bench-record-")
    os.environ["KODIFY_DATA_DIR"] = data
    os.environ.setdefault("KODIFY_SECRET_KEY", "bench-" + "x" * 50)
    for name in ("DB_URL", "REDIS_URL"):
        os.environ.pop(name, None)
    rounds = measure(args.number, args.repeat, args.prompt_bytes, args.chunks)
    print(
        f"record(): median {statistics.median(rounds):.2f} µs, best {min(rounds):.2f} µs "
        f"per call ({args.prompt_bytes} B prompt, {args.chunks} chunks; rounds: "
        + ", ".join(f"{r:.2f}" for r in rounds)
        + ")"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
