"""Replaying a typing trace (``bench.routing_trace``) against a Kodify, as editors would.

Every developer is a task with a client of its own (an editor keeps its connection).  A
completion the developer waits for is timed from sending to its answer (a Tabby answer
comes whole: its first token is the answer); a chat is streamed and timed to its first
content event.  A completion typed over is left running, as an editor that does not
cancel leaves it: the developer's next request is sent ``typed_on_after`` seconds later,
and the earlier answer, when it comes, is read by nobody.  The trace's pauses are its
timing (the developer typing and reading), not a synchronisation.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

import httpx
import orjson

from bench.routing_trace import Chat, Completion, Developer

REQUEST_TIMEOUT_S = 120.0


@dataclass
class Outcome:
    request_id: str
    kind: str  # "completion" | "chat"
    waited: bool  # False: the developer had typed on; nobody read the answer
    status: int = 0
    ttft: float | None = None  # seconds to the first token, for the ones waited for
    superseded: bool = False  # answered empty: a newer completion for its document came


async def replay(url: str, trace: Sequence[Developer], *, run: str, model: str) -> list[Outcome]:
    """Every developer's steps against ``url``; each request's ``X-Request-Id`` is
    ``<run>-<developer>-<step>``, which the journal keeps (``client_request_id``)."""
    per_developer = await asyncio.gather(
        *(_developer(url, developer, run=run, model=model) for developer in trace)
    )
    return [outcome for outcomes in per_developer for outcome in outcomes]


async def _developer(url: str, developer: Developer, *, run: str, model: str) -> list[Outcome]:
    outcomes: list[Outcome] = []
    unread: list[asyncio.Task[None]] = []
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=8)
    async with httpx.AsyncClient(base_url=url, timeout=REQUEST_TIMEOUT_S, limits=limits) as client:
        for index, step in enumerate(developer.steps):
            request_id = f"{run}-{developer.name}-{index}"
            if isinstance(step, Chat):
                outcome = Outcome(request_id, "chat", waited=True)
                await _chat(client, step, outcome, model)
                outcomes.append(outcome)
                await asyncio.sleep(step.think)  # reading the answer
                continue
            outcome = Outcome(request_id, "completion", waited=step.typed_on_after is None)
            outcomes.append(outcome)
            sent = _complete(client, step, outcome)
            if step.typed_on_after is None:
                await sent
                await asyncio.sleep(step.think)  # reading the suggestion
            else:
                unread.append(asyncio.ensure_future(sent))
                await asyncio.sleep(step.typed_on_after)  # typing on
        await asyncio.gather(*unread)
    return outcomes


async def _complete(client: httpx.AsyncClient, step: Completion, outcome: Outcome) -> None:
    started = time.perf_counter()
    response = await client.post(
        "/v1/completions", json=step.body(), headers={"X-Request-Id": outcome.request_id}
    )
    outcome.status = response.status_code
    if response.status_code == 200:
        outcome.superseded = response.json().get("choices") == []
        if outcome.waited:
            outcome.ttft = time.perf_counter() - started


async def _chat(client: httpx.AsyncClient, step: Chat, outcome: Outcome, model: str) -> None:
    started = time.perf_counter()
    async with client.stream(
        "POST",
        "/v1/chat/completions",
        json=step.body(model),
        headers={"X-Request-Id": outcome.request_id},
    ) as response:
        outcome.status = response.status_code
        async for line in response.aiter_lines():
            if outcome.ttft is None and line.startswith("data:") and _has_content(line):
                outcome.ttft = time.perf_counter() - started


def _has_content(line: str) -> bool:
    payload = line[len("data:") :].strip()
    if payload == "[DONE]":
        return False
    choices = orjson.loads(payload).get("choices") or []
    return any((choice.get("delta") or {}).get("content") for choice in choices)
