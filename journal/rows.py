"""Turn the gateway's raw :class:`~journal.record.Record` into a journal row.

Runs in the journal writer's thread, never on the request path, but beside the proxy on
one GIL: orjson for the bodies, one pass over a stream's bytes, patterns compiled once
(``journal.redact``).  The row is a dict of :class:`~journal.models.Entry` field values.

Every text is made storable here, so that the database never refuses a row for its
content: PostgreSQL text cannot hold NUL characters or lone surrogates, and a value
longer than its column would fail the whole batch.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import orjson
from django.conf import settings

from journal.clients import parse_user_agent
from journal.record import Record
from journal.redact import redact

# Secrets that straddle the length limit are masked whole: the text is masked with this
# much to spare, then cut.
_REDACT_MARGIN = 4096
CHOICE_SEPARATOR = "\n\n--- choice {} ---\n"
_DONE = b"[DONE]"
_RARE_PARTS = frozenset({"reasoning_content", "reasoning", "tool_calls", "function_call"})

# Column lengths of journal.models.Entry.
_LIMITS = {
    "client_request_id": 128,
    "username": 150,
    "auth_mode": 16,
    "user_agent": 512,
    "endpoint": 64,
    "feature": 16,
    "model": 200,
    "upstream": 300,
    "language": 32,
    "response_id": 64,
}


def build_row(rec: Record) -> dict[str, Any]:
    """The :class:`~journal.models.Entry` field values (all but ``id``) of one record."""
    max_text = settings.KODIFY_JOURNAL_MAX_TEXT
    body = rec.request_body.decode("utf-8", errors="replace")
    request_body, body_masked, body_cut = _masked(body, max_text)
    answer = read_answer(rec.response_chunks, stream=rec.stream)
    response_text, answer_masked, answer_cut = _masked(answer.text, max_text)
    error, error_masked, _ = _masked(rec.error, max_text) if rec.error else ("", 0, False)
    client_name, client_version = parse_user_agent(rec.user_agent)
    row: dict[str, Any] = {
        "created_at": datetime.fromtimestamp(rec.started_at, tz=UTC),
        "request_id": rec.request_id,
        "client_request_id": rec.client_request_id,
        "user_id": rec.user_id,
        "username": rec.username,
        "token_id": rec.token_id,
        "auth_mode": rec.auth_mode,
        "client_ip": _ip(rec.client_ip),
        "user_agent": rec.user_agent,
        "client_name": client_name,
        "client_version": client_version,
        "endpoint": rec.endpoint,
        "feature": rec.feature,
        "model": rec.model or answer.model,
        "upstream": rec.upstream,
        "language": rec.language,
        "stream": rec.stream,
        "request_body": request_body,
        "response_text": response_text,
        "response_id": answer.response_id,
        "prompt_tokens": answer.prompt_tokens,
        "completion_tokens": answer.completion_tokens,
        "status": rec.status,
        "error": error,
        "ttft_ms": _ms(rec.first_byte_at, rec.started),
        "latency_ms": _ms(rec.finished_at or rec.first_byte_at, rec.started) or 0.0,
        "cancelled": rec.cancelled,
        "redactions": body_masked + answer_masked + error_masked,
        "truncated": body_cut or answer_cut,
    }
    for name, limit in _LIMITS.items():
        value = row[name]
        # Most values are short ASCII already; only the others need the full treatment.
        if len(value) > limit or not value.isascii() or "\x00" in value:
            row[name] = _storable(value)[:limit]
    return row


def _masked(text: str, limit: int) -> tuple[str, int, bool]:
    """(masked and storable text cut to ``limit``, secrets masked, whether it was cut)."""
    if not text:
        return "", 0, False
    masked, count = redact(_storable(text[: limit + _REDACT_MARGIN]))
    return masked[:limit], count, len(text) > limit or len(masked) > limit


def _storable(text: str) -> str:
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates, from a JSON \ud800 escape
        text = text.encode("utf-8", errors="replace").decode("utf-8")
    return text


@lru_cache(maxsize=4096)
def _ip(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:  # a unix socket path, or a proxy's odd header
        return None


def _ms(at: float | None, started: float) -> float | None:
    return None if at is None else max(at - started, 0.0) * 1000.0


# -- the answer ---------------------------------------------------------------------------


@dataclass
class _Choice:
    content: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    # tool call index: [name, argument pieces]
    tools: dict[int, tuple[list[str], list[str]]] = field(default_factory=dict)

    def text(self) -> str:
        content = "".join(self.content)
        parts = []
        if self.reasoning:
            parts.append("[reasoning]\n" + "".join(self.reasoning))
        if content and (self.reasoning or self.tools):
            parts.append("[answer]\n" + content)
        elif content:
            parts.append(content)
        for name, arguments in self.tools.values():
            parts.append(f"[tool call] {''.join(name)}({''.join(arguments)})")
        return "\n\n".join(parts)


@dataclass
class Answer:
    text: str = ""
    response_id: str = ""
    model: str = ""
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


class _Reader:
    """Collects an answer from its JSON objects: one whole body, or a stream's events."""

    def __init__(self) -> None:
        self.answer = Answer()
        self.choices: dict[int, _Choice] = {}

    def take(self, obj: Any) -> None:
        if type(obj) is not dict:
            return
        answer = self.answer
        if not answer.response_id and isinstance(obj.get("id"), str):
            answer.response_id = obj["id"]
        if not answer.model and isinstance(obj.get("model"), str):
            answer.model = obj["model"]
        usage = obj.get("usage")
        if type(usage) is dict:
            answer.prompt_tokens = _count(usage.get("prompt_tokens"), answer.prompt_tokens)
            answer.completion_tokens = _count(
                usage.get("completion_tokens"), answer.completion_tokens
            )
        choices = obj.get("choices")
        if isinstance(choices, list):
            for position, choice in enumerate(choices):
                if isinstance(choice, dict):
                    self._choice(choice, position)

    def _choice(self, choice: dict[str, Any], position: int) -> None:
        # Called once per streamed event: the common shapes (a chat delta with content,
        # a completion's text) take the short way.
        index = choice.get("index")
        key = index if type(index) is int else position
        acc = self.choices.get(key)
        if acc is None:
            acc = self.choices[key] = _Choice()
        part = choice.get("delta") or choice.get("message")  # chat: stream, whole
        if type(part) is not dict:
            text = choice.get("text")  # completions
            if type(text) is str:
                acc.content.append(text)
            return
        content = part.get("content")
        if type(content) is str:
            acc.content.append(content)
        if not _RARE_PARTS.intersection(part):
            return
        for name in ("reasoning_content", "reasoning"):
            value = part.get(name)
            if isinstance(value, str):
                acc.reasoning.append(value)
        calls = part.get("tool_calls")
        if isinstance(calls, list):
            for number, call in enumerate(calls):
                if isinstance(call, dict):
                    slot = call.get("index")
                    _tool(acc, slot if isinstance(slot, int) else number, call.get("function"))
        _tool(acc, -1, part.get("function_call"))  # the legacy single call

    def result(self, raw: bytes) -> Answer:
        if self.choices:
            texts = [(index, self.choices[index].text()) for index in sorted(self.choices)]
            self.answer.text = texts[0][1] if len(texts) == 1 else _join_choices(texts)
        else:  # an error, or something else that is not an answer: keep it as it came
            self.answer.text = raw.decode("utf-8", errors="replace")
        return self.answer


def _join_choices(texts: list[tuple[int, str]]) -> str:
    pieces = []
    for index, text in texts:
        pieces.append(CHOICE_SEPARATOR.format(index))
        pieces.append(text)
    return "".join(pieces).lstrip("\n")


def _tool(acc: _Choice, slot: int, function: Any) -> None:
    if not isinstance(function, dict):
        return
    name, arguments = acc.tools.setdefault(slot, ([], []))
    if isinstance(function.get("name"), str):
        name.append(function["name"])
    if isinstance(function.get("arguments"), str):
        arguments.append(function["arguments"])


def _count(value: Any, default: int | None) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def read_answer(chunks: list[bytes], *, stream: bool) -> Answer:
    """The answer's text, id, model and token counts from the upstream's raw bytes."""
    raw = b"".join(chunks)
    if stream:
        fast = _simple_stream_answer(raw)
        if fast is not None:
            return fast
    reader = _Reader()
    if stream and b"data:" in raw:
        events = [data for data in sse_data(raw) if data.strip() != _DONE]
        for obj in _loads_all(events):
            reader.take(obj)
    else:
        reader.take(_loads(raw))
    return reader.result(raw)


# A stream with one choice of plain text (what code completion and most chat produce):
# the contents are pulled out of the raw bytes by one regex and decoded by one orjson
# call, instead of decoding every event in Python (a stream has one event per token).
# Inside a JSON string every quote is escaped, so the patterns only see real keys.
_STRING = rb'"([^"\\]*(?:\\.[^"\\]*)*)"'  # a JSON string's inside, loop unrolled
_CHAT_CONTENT = re.compile(rb'"delta":\{(?:"role":"[a-z]*",)?"content":' + _STRING)
_TEXT = re.compile(rb'"text":' + _STRING)
_NOT_SIMPLE = (b'"tool_calls"', b'"function_call"', b'"reasoning', b'"logprobs":{', b'"error"')


def _simple_stream_answer(raw: bytes) -> Answer | None:
    """The answer of a simple stream, or None when it is not one (the full reader then)."""
    # A stream cut short (the client left) ends inside an event: that one is not read.
    raw = raw[: raw.rfind(b"\n\n") + 2]
    if any(marker in raw for marker in _NOT_SIMPLE):
        return None
    events = raw.count(b'"choices":[{')
    if raw.count(b'"index":0') != raw.count(b'"index":'):
        return None  # several choices (n > 1)
    pieces = (_CHAT_CONTENT if b'"delta"' in raw else _TEXT).findall(raw)
    if not pieces or len(pieces) != events:
        return None  # an event whose content the pattern did not see: read them all
    try:
        answer = Answer(text=orjson.loads(b'"' + b"".join(pieces) + b'"'))
        answer.response_id = _plain_string(raw, b'"id":"')
        answer.model = _plain_string(raw, b'"model":"')
        at = raw.rfind(b'"usage":{')
        if at >= 0:
            start = raw.rfind(b"data:", 0, at) + 5
            usage = orjson.loads(raw[start : raw.find(b"\n", at)]).get("usage")
            if type(usage) is dict:
                answer.prompt_tokens = _count(usage.get("prompt_tokens"), None)
                answer.completion_tokens = _count(usage.get("completion_tokens"), None)
    except (orjson.JSONDecodeError, AttributeError):  # a lone surrogate, an odd event
        return None
    return answer


def _plain_string(raw: bytes, key: bytes) -> str:
    """The first value of ``key`` (ids and model names: no escapes in them)."""
    at = raw.find(key)
    if at < 0:
        return ""
    start = at + len(key)
    value = raw[start : raw.find(b'"', start)]
    return "" if b"\\" in value else value.decode("utf-8", errors="replace")


def _loads_all(events: list[bytes]) -> list[Any]:
    """Every event's JSON, in one orjson call when they all parse (the usual case)."""
    try:
        parsed = orjson.loads(b"[" + b",".join(events) + b"]")
    except orjson.JSONDecodeError:
        return [_loads(data) for data in events]
    # An event holding two values ("1, 2") would have parsed as two: only a count that
    # matches means one value per event.
    return parsed if len(parsed) == len(events) else [_loads(data) for data in events]


def sse_data(raw: bytes) -> list[bytes]:
    """The ``data`` of each server-sent event, in one pass over the joined bytes (chunks
    split lines and events anywhere, so they are joined first)."""
    if b"\r" not in raw:
        # vLLM's and OpenAI's framing: one "data: " line per event, a blank line after.
        # Split by events in C; only an event of several lines goes the long way.
        simple: list[bytes] = []
        for event in raw.split(b"\n\n"):
            if b"\n" in event.strip(b"\n"):
                return _sse_data_by_line(raw)
            event = event.strip(b"\n")
            if event.startswith(b"data: "):
                simple.append(event[6:])
            elif event.startswith(b"data:"):
                simple.append(event[5:])
        return simple
    return _sse_data_by_line(raw)


def _sse_data_by_line(raw: bytes) -> list[bytes]:
    events: list[bytes] = []
    lines: list[bytes] = []
    for line in raw.split(b"\n"):
        if line.endswith(b"\r"):
            line = line[:-1]
        if not line:  # a blank line ends an event
            if lines:
                events.append(b"\n".join(lines))
                lines = []
        elif line.startswith(b"data:"):
            lines.append(line[6:] if line.startswith(b"data: ") else line[5:])
    if lines:  # the last event of a stream cut short
        events.append(b"\n".join(lines))
    return events


def _loads(data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        pass
    try:  # orjson refuses lone surrogates (\ud800), which some models do produce
        return json.loads(data)
    except ValueError:
        return None
