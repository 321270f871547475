"""What ``make bench`` measures: the request bodies, the scenarios and the issue's targets.

A :class:`Scenario` is one request body on one path at one concurrency; ``SCENARIOS`` are
the ones every target runs, the others are the paired measurements' (the auth and journal
costs, the first-chunk time, the Tabby completions).  The goals are the issue's figures
for one uvicorn worker, information only.  ``bench.measure`` drives them, ``bench.targets``
says where, ``bench.run_report`` checks the goals on the figures.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import orjson

from bench import fim_timing, fim_workload, report

FAKE_MODEL = "fake-model"


def chat_body(*, stream: bool, pace_s: float = 0.0) -> dict[str, Any]:
    body: dict[str, Any] = {"model": FAKE_MODEL, "messages": [{"role": "user", "content": "hi"}]}
    if stream:
        body["stream"] = True
    if pace_s:  # the fake sleeps this long before each chunk (Kodify forwards "fake")
        body["fake"] = {"delay": pace_s}
    return body


@dataclass(frozen=True)
class Scenario:
    kind: str
    connections: int
    body: Mapping[str, Any]
    path: str = "/v1/chat/completions"

    @property
    def name(self) -> str:
        return f"{self.kind} c={self.connections}"

    def body_bytes(self) -> bytes:
        return json.dumps(self.body, separators=(",", ":")).encode()


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("non-stream", 1, chat_body(stream=False)),
    Scenario("non-stream", 32, chat_body(stream=False)),
    Scenario("stream", 1, chat_body(stream=True)),
    Scenario("stream", 32, chat_body(stream=True)),
)

# Time to first token is measured on a paced stream: when the fake sends all 16 chunks at
# once, the first one and the last arrive together and the first-chunk time is just the
# whole relay. With 1 ms between chunks it shows whether Kodify passes the first chunk on
# at once or holds it. The pace adds the same 1 ms (and timer slack) to both targets.
AUTH_COST_SCENARIO = SCENARIOS[1]  # non-stream c=32

TTFT_SCENARIO = Scenario("paced stream", 1, chat_body(stream=True, pace_s=0.001))

# The targets for one uvicorn worker; information only, never a failing exit code.
# Per-user authentication may cost at most this share of the dummy-mode RPS (the issue),
# judged on the median of paired rounds of this scenario (one 5 s figure varies by ±10 %
# on a shared 2-core machine, twice the budget).
AUTH_COST_GOAL = report.Goal(
    "per-user auth cost, non-stream c=32 (% of RPS)", "median", 5, higher_is_better=False
)
# With the journal on, every request is recorded; the proxy must keep >= 90 % of its RPS.
JOURNAL_COST_SCENARIOS = (SCENARIOS[1], SCENARIOS[3])  # non-stream and stream, c=32
JOURNAL_COST_GOAL = report.Goal(
    "journal cost, c=32 (% of RPS, median of paired rounds)", "median", 10, higher_is_better=False
)

# -- Tabby completions -------------------------------------------------------------------
#
# The fake serves a Qwen-named model first: without config.yml's tabby.model_name Kodify
# sends Tabby completions to the first model, and the name picks the shipped qwen config,
# so the real FIM template, stop words and post-processing are what is measured.
TABBY_MODEL = fim_workload.MODEL
FAKE_MODELS = (TABBY_MODEL, FAKE_MODEL)
COMPLETIONS_PATH = "/v1/completions"
TABBY_CONNECTIONS = (1, 32)
TABBY_BASE, TABBY_OTHER = "openai", "tabby"


@cache
def tabby_pairs() -> tuple[tuple[Scenario, Scenario], ...]:
    """(OpenAI completion, Tabby completion) at each concurrency, measured in pairs on
    the same Kodify.

    The Tabby body is a client's request from a big Python file (``bench.fim_workload``:
    a 20 KB prefix, a 3 KB suffix, 10 snippets).  The OpenAI body is the very request Kodify sends
    upstream for it (the FIM prompt, stop words, max_tokens), as a client that builds its
    own prompt would send it: the fake then does the same work for both, and what the
    Tabby path adds is Kodify's: a bigger body to read, the prompt to build and the
    answer to clean up."""
    tabby = fim_workload.build_workload("python")
    _, upstream, _ = fim_timing.one_request(tabby, fim_workload.qwen_profile())
    openai = {**orjson.loads(upstream), "model": TABBY_MODEL}
    return tuple(
        (
            Scenario("completion", connections, openai, COMPLETIONS_PATH),
            Scenario("tabby", connections, tabby.body, COMPLETIONS_PATH),
        )
        for connections in TABBY_CONNECTIONS
    )


GOALS: tuple[report.Goal, ...] = (
    report.Goal("non-stream RPS at c=32", "non-stream c=32 rps", 1500, higher_is_better=True),
    report.Goal("stream RPS at c=32", "stream c=32 rps", 1000, higher_is_better=True),
    report.Goal("added p50 at c=1, non-stream (ms)", "non-stream c=1 added p50 ms", 2, False),
    report.Goal("added p50 at c=1, stream (ms)", "stream c=1 added p50 ms", 2, False),
    report.Goal("added TTFT p50 at c=1 (ms)", "ttft added p50 ms", 2, False),
)
