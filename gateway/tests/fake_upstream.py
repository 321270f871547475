"""A fast fake OpenAI/vLLM upstream for tests and benchmarks.

Speaks vLLM's dialect: ``/health`` (200, empty), ``/version``, ``/v1/models`` (with
``max_model_len``), ``/v1/chat/completions`` and ``/v1/completions``, streamed as ``data:
{json}`` events ending with ``data: [DONE]``, ``stream_options.include_usage`` honoured,
vLLM's error shapes; ``/tokenize`` and ``/detokenize`` (a token per byte).

A request can steer it with a ``"fake"`` object in its body (Kodify forwards unknown
fields): ``{"fake": {"chunks": 5, "delay": 0.01, "first_byte_delay": 2, "status": 500,
"error_shape": "old"|"new"|"plain", "text": "…"}}``.  ``completion_text`` (a function of
the request body) answers ``/v1/completions`` with a chosen text instead of ``tok0 tok1 …``;
either text is cut at the first of the request's ``stop`` strings, as vLLM does.

It records requests, completed answers and clients that went away before the end, so a
test can prove that Kodify closed the upstream connection.  When such a request carried an
``X-Request-Id``, the ``time.monotonic()`` at which the fake noticed is kept under that id
and served by ``GET /_fake/disconnects`` (``?id=…`` for one): CLOCK_MONOTONIC is the same
for every process on Linux, so a benchmark in another process can time how long the
upstream connection outlived its client (``bench.streams``).

Run alone: ``python -m gateway.tests.fake_upstream --port 9001 --chunks 16``.
"""

from __future__ import annotations

import argparse
import asyncio
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from kodify_site.testing import WAIT_S

DEFAULT_MODEL = "fake-model"
# Disconnect times kept by request id: the newest this many (a benchmark's load cuts off
# streams by the thousand, each with an id Kodify made up).
DISCONNECTS_KEPT = 10_000
_DONE = b"data: [DONE]\n\n"


@dataclass
class Record:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    outcome: str = "running"  # running | completed | disconnected


@dataclass
class FakeUpstream:
    models: tuple[str, ...] = (DEFAULT_MODEL,)
    chunks: int = 16
    delay: float = 0.0
    api_key: str | None = None
    max_model_len: int = 4096
    completion_text: Callable[[dict[str, Any]], str] | None = None
    first_byte_delay: float = 0.0  # every generation waits this long before answering
    status: int = 0  # every generation fails with this status (a broken replica); 0: none
    version: str = "0.32.0"  # GET /version's; vLLM's builds for a CPU say "0.32.0+cpu"
    # Counters, kept even when records are not (a benchmark or a separate process).
    seen: int = 0
    completed: int = 0
    records: list[Record] = field(default_factory=list)
    # X-Request-Id -> time.monotonic() when its client was noticed gone (oldest first).
    disconnected_at: dict[str, float] = field(default_factory=dict)
    disconnects_kept: int = DISCONNECTS_KEPT
    _changed: threading.Condition = field(default_factory=threading.Condition)

    # -- observation (thread-safe, for tests) ----------------------------------------

    def wait_for(self, predicate: Callable[[FakeUpstream], bool], timeout: float = WAIT_S) -> bool:
        """Block until ``predicate(self)`` holds (checked on every change) or time runs out."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate(self):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)
        return True

    def count(self, outcome: str) -> int:
        return sum(1 for record in self.records if record.outcome == outcome)

    def _notify(self) -> None:
        with self._changed:
            self._changed.notify_all()

    def _finish(self, record: Record, outcome: str) -> None:
        record.outcome = outcome
        self._notify()

    def _note_disconnect(self, request: web.Request, at: float) -> None:
        request_id = request.headers.get("X-Request-Id")
        if not request_id:
            return
        self.disconnected_at.pop(request_id, None)  # a reused id counts as the newest
        self.disconnected_at[request_id] = at
        while len(self.disconnected_at) > self.disconnects_kept:
            del self.disconnected_at[next(iter(self.disconnected_at))]

    # -- the server ------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/health", self.health)
        app.router.add_get("/v1/models", self.list_models)
        app.router.add_get("/version", self.show_version)
        app.router.add_post("/v1/chat/completions", self.generate)
        app.router.add_post("/v1/completions", self.generate)
        app.router.add_post("/tokenize", self.tokenize)
        app.router.add_post("/detokenize", self.detokenize)
        app.router.add_get("/_fake/stats", self.stats)
        app.router.add_get("/_fake/disconnects", self.disconnects)
        return app

    def _authorised(self, request: web.Request) -> bool:
        return (
            self.api_key is None or request.headers.get("Authorization") == f"Bearer {self.api_key}"
        )

    async def health(self, request: web.Request) -> web.Response:
        return web.Response(status=200)

    async def show_version(self, request: web.Request) -> web.Response:
        return _json(200, {"version": self.version})

    async def stats(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "requests": self.seen,
                "completed": self.completed,
                "disconnected": self.count("disconnected"),
            }
        )

    async def disconnects(self, request: web.Request) -> web.Response:
        """``{request id: time.monotonic() when its client went away}``; ``?id=`` for one
        (an empty object until it has gone)."""
        wanted = request.query.get("id")
        if wanted is None:
            return _json(200, self.disconnected_at)
        at = self.disconnected_at.get(wanted)
        return _json(200, {} if at is None else {wanted: at})

    async def list_models(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return _unauthorised()
        data = [
            {
                "id": name,
                "object": "model",
                "created": 1700000000,
                "owned_by": "vllm",
                "max_model_len": self.max_model_len,
            }
            for name in self.models
        ]
        return _json(200, {"object": "list", "data": data})

    async def tokenize(self, request: web.Request) -> web.Response:
        """vLLM's ``/tokenize``: here one token per UTF-8 byte, of the prompt or of the
        messages in a ChatML-like layout."""
        body, refused = await self._tokenizer_request(request)
        if refused is not None:
            return refused
        messages = body.get("messages")
        if isinstance(messages, list):
            text = "".join(
                f"<|im_start|>{m.get('role')}\n{m.get('content')}<|im_end|>\n"
                for m in messages
                if isinstance(m, dict)
            )
        else:
            text = str(body.get("prompt") or "")
        tokens = list(text.encode())
        return _json(
            200,
            {
                "count": len(tokens),
                "max_model_len": self.max_model_len,
                "tokens": tokens,
                "token_strs": [chr(t) for t in tokens] if body.get("return_token_strs") else None,
            },
        )

    async def detokenize(self, request: web.Request) -> web.Response:
        """vLLM's ``/detokenize``: the bytes of the token ids (ids past 255 refused)."""
        body, refused = await self._tokenizer_request(request)
        if refused is not None:
            return refused
        tokens = body.get("tokens")
        if not isinstance(tokens, list) or not all(
            isinstance(t, int | float) and 0 <= t < 256 for t in tokens
        ):
            return _error(400, "Token id out of vocabulary", "old")
        text = bytes(int(t) for t in tokens).decode("utf-8", errors="replace")
        return _json(200, {"prompt": text})

    async def _tokenizer_request(
        self, request: web.Request
    ) -> tuple[dict[str, Any], web.Response | None]:
        if not self._authorised(request):
            return {}, _unauthorised()
        body = orjson.loads(await request.read())
        record = Record(path=request.path, headers=dict(request.headers), body=body)
        self.seen += 1
        self.records.append(record)
        self._finish(record, "completed")
        model = body.get("model")
        if model is not None and model not in self.models:
            return body, _error(404, f"The model `{model}` does not exist.", None)
        return body, None

    async def generate(self, request: web.Request) -> web.StreamResponse:
        if not self._authorised(request):
            return _unauthorised()
        body = orjson.loads(await request.read())
        record = Record(path=request.path, headers=dict(request.headers), body=body)
        self.seen += 1
        self.records.append(record)
        self._notify()
        steer = body.get("fake") or {}
        try:
            response = await self._answer(request, body, steer)
        except (asyncio.CancelledError, ConnectionResetError):
            self._note_disconnect(request, time.monotonic())
            self._finish(record, "disconnected")
            raise
        self.completed += 1
        self._finish(record, "completed")
        return response

    async def _answer(
        self, request: web.Request, body: dict[str, Any], steer: dict[str, Any]
    ) -> web.StreamResponse:
        first_byte_delay = float(steer.get("first_byte_delay", self.first_byte_delay))
        if first_byte_delay:
            await asyncio.sleep(first_byte_delay)
        model = body.get("model")
        if model not in self.models:
            return _error(404, f"The model `{model}` does not exist.", steer.get("error_shape"))
        stop = body.get("stop")
        if isinstance(stop, list) and len(stop) > 4:  # vLLM's (and OpenAI's) limit
            return _error(400, "body.stop: List should have at most 4 items", "old")
        status = int(steer.get("status") or self.status)
        if status:
            return _error(status, "fake failure", steer.get("error_shape"))
        chat = request.path.endswith("chat/completions")
        pieces = self._pieces(chat, body, steer)
        chunks = len(pieces)
        delay = float(steer.get("delay", self.delay))
        n = int(body.get("n") or 1)
        ident = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex
        usage = {
            "prompt_tokens": 7,
            "completion_tokens": chunks * n,
            "total_tokens": 7 + chunks * n,
        }
        if not body.get("stream"):
            if delay:
                await asyncio.sleep(delay * chunks)
            text = "".join(pieces)
            choices = [
                {
                    "index": i,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
                if chat
                else {"index": i, "text": text, "finish_reason": "stop", "logprobs": None}
                for i in range(n)
            ]
            return _json(
                200,
                {
                    "id": ident,
                    "object": "chat.completion" if chat else "text_completion",
                    "created": int(time.time()),
                    "model": model,
                    "choices": choices,
                    "usage": usage,
                },
            )
        response = web.StreamResponse(
            status=200, headers={"Content-Type": "text/event-stream; charset=utf-8"}
        )
        await response.prepare(request)
        created = int(time.time())
        for i in range(chunks):
            if delay:
                await asyncio.sleep(delay)
            last = i == chunks - 1
            choice: dict[str, Any] = (
                {
                    "index": 0,
                    "delta": {"content": pieces[i]},
                    "logprobs": None,
                    "finish_reason": "stop" if last else None,
                }
                if chat
                else {
                    "index": 0,
                    "text": pieces[i],
                    "logprobs": None,
                    "finish_reason": "stop" if last else None,
                }
            )
            event = {
                "id": ident,
                "object": "chat.completion.chunk" if chat else "text_completion",
                "created": created,
                "model": model,
                "choices": [choice],
            }
            await response.write(b"data: " + orjson.dumps(event) + b"\n\n")
        if (body.get("stream_options") or {}).get("include_usage"):
            event = {
                "id": ident,
                "object": "chat.completion.chunk" if chat else "text_completion",
                "created": created,
                "model": model,
                "choices": [],
                "usage": usage,
            }
            await response.write(b"data: " + orjson.dumps(event) + b"\n\n")
        await response.write(_DONE)
        await response.write_eof()
        return response

    def _pieces(self, chat: bool, body: dict[str, Any], steer: dict[str, Any]) -> list[str]:
        """The answer's text in the pieces it is streamed in (one token each)."""
        text = steer.get("text")
        if text is None and not chat and self.completion_text is not None:
            text = self.completion_text(body)
        if text is None:
            pieces = [_token(i) for i in range(int(steer.get("chunks", self.chunks)))]
        else:
            pieces = [text[i : i + 4] for i in range(0, len(text), 4)] or [""]
        stop = body.get("stop") or []
        whole = "".join(pieces)
        cut = min(
            (
                whole.index(word)
                for word in ([stop] if isinstance(stop, str) else stop)
                if word and word in whole
            ),
            default=None,
        )
        if cut is None:
            return pieces
        whole = whole[:cut]
        return [whole[i : i + 4] for i in range(0, len(whole), 4)] or [""]


def _token(i: int) -> str:
    return f"tok{i} "


def _json(status: int, data: Any) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(data), content_type="application/json")


def _unauthorised() -> web.Response:
    return _json(401, {"error": "Unauthorized"})


def _error(status: int, message: str, shape: str | None) -> web.Response:
    kind = {400: "BadRequestError", 404: "NotFoundError"}.get(status, "InternalServerError")
    if shape == "old":
        return _json(
            status,
            {"object": "error", "message": message, "type": kind, "param": None, "code": status},
        )
    if shape == "plain":
        return web.Response(status=status, text=message)
    return _json(
        status, {"error": {"message": message, "type": kind, "param": None, "code": status}}
    )


class FakeUpstreamServer:
    """Runs a :class:`FakeUpstream` on 127.0.0.1 in a background thread (for tests)."""

    def __init__(self, fake: FakeUpstream, port: int = 0) -> None:
        self.fake = fake
        self.port = port
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeUpstreamServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    async def _start(self) -> None:
        # A test double has nothing to finish gracefully: answers still running when it
        # stops are cut after a moment rather than aiohttp's minute (a client's held-open
        # connection otherwise made stop() time out on a busy machine).
        self._runner = web.AppRunner(
            self.fake.app(), handler_cancellation=True, access_log=None, shutdown_timeout=1.0
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]

    def stop(self) -> None:
        """Stop serving (a second call does nothing)."""
        if self._loop.is_closed():
            return
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9001)
    parser.add_argument("--chunks", type=int, default=16)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--model", action="append", dest="models")
    parser.add_argument("--first-byte-delay", type=float, default=0.0)
    parser.add_argument("--api-key")
    args = parser.parse_args()
    fake = FakeUpstream(
        models=tuple(args.models or [DEFAULT_MODEL]),
        chunks=args.chunks,
        delay=args.delay,
        api_key=args.api_key,
        first_byte_delay=args.first_byte_delay,
    )
    # Records would grow without bound under benchmark load; keep none there.
    fake.records = _NoRecords()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    web.run_app(
        fake.app(),
        host=args.host,
        port=args.port,
        access_log=None,
        handler_cancellation=True,
        print=None,
    )


class _NoRecords(list[Record]):
    def append(self, item: Record) -> None:
        pass


if __name__ == "__main__":
    main()
