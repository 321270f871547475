"""Realistic journal rows, many and fast, for ``manage.py kodify_journal_fill``.

Rows mix code completions (fill-in-the-middle prompts of real-looking code in several
languages) and chats, a few users much busier than the rest, statuses, models, editors,
timing and token counts as a gateway sees them, spread over the days asked for in time
order.  Completions get Tabby events (shown, accepted, dismissed) so the dashboards have
acceptance rates.

Speed: texts come from pools made once, so a row costs a few random draws.  Request ids
start with ``fill`` and a run id, so they never meet a real one.
"""

from __future__ import annotations

import ipaddress
import json
import os
import random
from bisect import bisect
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import accumulate
from typing import Any

from journal.clients import parse_user_agent
from journal.models import Entry, Event, Feature

# Words the benchmark searches for: one in much of the code, one in a few rows only.
COMMON_WORD = "invoice"  # a noun of the code templates: about a quarter of the rows
MIDDLE_WORD = "KeyError"  # one chat question in five: one or two rows in a hundred
RARE_WORD = "zanzibar"
RARE_SHARE = 0.0005
POOL_SIZE = 600

LANGUAGES = ("python", "typescript", "go", "java", "rust", "sql")
COMPLETION_MODELS = ("qwen2.5-coder-7b", "deepseek-coder-6.7b-base")
CHAT_MODELS = ("qwen2.5-coder-32b-instruct", "llama-3.1-70b-instruct")
UPSTREAMS = ("http://vllm-0:8000", "http://vllm-1:8000", "http://vllm-2:8000")
USER_AGENTS = (
    "Node.js/v20.11.0 tabby-agent/1.7.0 Visual-Studio-Code/1.90.0 TabbyML.vscode-tabby/1.7.0",
    "Node.js/v20.11.0 tabby-agent/1.7.0 IntelliJ-IDEA/2024.1.4 intellij-tabby/1.7.0",
    "Node.js/v18.19.0 tabby-agent/1.6.2 PyCharm/2024.1.2 intellij-tabby/1.6.2",
    "Kodify-JetBrains/1.2.0 (GoLand 2024.1)",
    "Kodify-VSCode/0.9.3 VSCode/1.90.0",
    "Continue/0.9.200 (vscode)",
    "OpenAI/Python 1.54.0",
    "curl/8.5.0",
)
CLIENT_WEIGHTS = (30, 18, 8, 10, 14, 8, 8, 4)
# (status, share of requests, error text)
STATUSES = (
    (200, 0.955, ""),
    (499, 0.02, ""),
    (400, 0.008, "Bad request: 'max_tokens' must be at most 4096."),
    (401, 0.003, "Invalid or revoked API token."),
    (429, 0.007, "Rate limit exceeded: 120 requests per minute."),
    (500, 0.004, "Internal error while relaying the request."),
    (502, 0.002, "The upstream closed the connection."),
    (504, 0.001, "The upstream did not answer within 60 s."),
)
CHAT_FEATURES = (Feature.CHAT, Feature.DOCS, Feature.FIX, Feature.TESTS, Feature.EXPLAIN)

# fmt: off
_NOUNS = (
    "invoice", "customer", "order", "payment", "account", "report", "user", "session",
    "cache", "request", "response", "item", "product", "price", "tax", "discount",
    "shipment", "address", "config", "record", "batch", "queue", "event", "metric",
    "schedule", "ticket", "message", "channel", "document", "page", "index", "entry",
)
_VERBS = (
    "load", "save", "find", "build", "parse", "render", "update", "delete", "compute",
    "check", "send", "fetch",
)
# fmt: on

_TEMPLATES: dict[str, tuple[str, ...]] = {
    "python": (
        "def {verb}_{noun}({noun}_id: int, *, {other}: str | None = None) -> dict:\n"
        '    """{Verb} the {noun} and its {other}s."""\n'
        "    {noun} = {Noun}.objects.get(pk={noun}_id)\n"
        "    if {other} is not None:\n"
        "        {noun}.{other} = {other}\n"
        "    total = sum(line.amount for line in {noun}.lines.all())\n"
        "    return {{'id': {noun}.pk, 'total': total, 'status': {noun}.status}}\n\n",
        "class {Noun}Service:\n"
        "    def __init__(self, repository, clock=time.monotonic):\n"
        "        self.repository = repository\n"
        "        self.clock = clock\n\n"
        "    def {verb}(self, {noun}):\n"
        "        started = self.clock()\n"
        "        result = self.repository.{verb}({noun})\n"
        "        logger.info('{verb} %s in %.1f ms', {noun}, (self.clock() - started) * 1000)\n"
        "        return result\n\n",
    ),
    "typescript": (
        "export async function {verb}{Noun}(id: string): Promise<{Noun} | null> {{\n"
        "  const response = await fetch(`/api/{noun}s/${{id}}`);\n"
        "  if (!response.ok) {{\n"
        "    throw new Error(`{verb} {noun} failed: ${{response.status}}`);\n"
        "  }}\n"
        "  const data = (await response.json()) as {Noun};\n"
        "  return data.{other} ? data : null;\n"
        "}}\n\n",
        "interface {Noun} {{\n  id: string;\n  {other}: string;\n  createdAt: Date;\n}}\n\n"
        "const {noun}Cache = new Map<string, {Noun}>();\n\n",
    ),
    "go": (
        "func (s *{Noun}Store) {Verb}(ctx context.Context, id int64) (*{Noun}, error) {{\n"
        "\trow := s.db.QueryRowContext(ctx, `SELECT id, {other} FROM {noun}s WHERE id = $1`, id)\n"
        "\tvar item {Noun}\n"
        "\tif err := row.Scan(&item.ID, &item.{Other}); err != nil {{\n"
        '\t\treturn nil, fmt.Errorf("{verb} {noun} %d: %w", id, err)\n'
        "\t}}\n\treturn &item, nil\n}}\n\n",
    ),
    "java": (
        "public {Noun} {verb}{Noun}(long id) {{\n"
        "    {Noun} {noun} = repository.findById(id)\n"
        '        .orElseThrow(() -> new NotFoundException("{noun} " + id));\n'
        "    {noun}.set{Other}(service.{verb}({noun}.get{Other}()));\n"
        "    return repository.save({noun});\n}}\n\n",
    ),
    "rust": (
        "pub fn {verb}_{noun}(items: &[{Noun}], {other}: &str) -> Result<Vec<{Noun}>, Error> {{\n"
        "    let mut out = Vec::with_capacity(items.len());\n"
        "    for item in items.iter().filter(|i| i.{other} == {other}) {{\n"
        "        out.push(item.clone());\n    }}\n    Ok(out)\n}}\n\n",
    ),
    "sql": (
        "SELECT {noun}.id, {noun}.{other}, SUM(line.amount) AS total\n"
        "FROM {noun}s AS {noun}\nJOIN {noun}_lines AS line ON line.{noun}_id = {noun}.id\n"
        "WHERE {noun}.created_at >= NOW() - INTERVAL '30 days'\n"
        "GROUP BY {noun}.id, {noun}.{other}\nORDER BY total DESC\nLIMIT 50;\n\n",
    ),
}
_QUESTIONS = (
    "Why does this {noun} code fail with a KeyError when the {other} is missing?",
    "Write unit tests for the {verb} function below.",
    "Explain what this {language} code does, step by step.",
    "Add docstrings to this {noun} module.",
    "How can I make {verb}ing {noun}s faster? It takes seconds for 10k rows.",
)


@dataclass(frozen=True)
class _Pools:
    # (language, request body by model, answer, prompt tokens)
    completions: list[tuple[str, dict[str, str], str, int]]
    chats: list[tuple[str, dict[str, str], str, int]]


def _snippet(rng: random.Random, language: str, size: int) -> str:
    parts: list[str] = []
    length = 0
    while length < size:
        noun, other = rng.sample(_NOUNS, 2)
        verb = rng.choice(_VERBS)
        text = rng.choice(_TEMPLATES[language]).format(
            noun=noun, Noun=noun.title(), other=other, Other=other.title(), verb=verb,
            Verb=verb.title(),
        )  # fmt: skip
        parts.append(text)
        length += len(text)
    return "".join(parts)[:size]


def _pools(rng: random.Random) -> _Pools:
    completions = []
    for _ in range(POOL_SIZE):
        language = rng.choice(LANGUAGES)
        code = _snippet(rng, language, rng.randint(200, 3000))
        cut = rng.randint(len(code) // 3, len(code) - 1)
        prompt = f"<|fim_prefix|>{code[:cut]}<|fim_suffix|>{code[cut:]}<|fim_middle|>"
        bodies = {
            model: json.dumps(
                {"model": model, "prompt": prompt, "max_tokens": 128, "temperature": 0.1}
            )
            for model in COMPLETION_MODELS
        }
        answer = _snippet(rng, language, rng.randint(10, 240)).split("\n\n")[0]
        completions.append((language, bodies, answer, len(prompt) // 4))
    chats = []
    for _ in range(POOL_SIZE // 2):
        language = rng.choice(LANGUAGES)
        noun, other = rng.sample(_NOUNS, 2)
        question = rng.choice(_QUESTIONS).format(
            noun=noun, other=other, verb=rng.choice(_VERBS), language=language
        )
        code = _snippet(rng, language, rng.randint(200, 2500))
        messages = [
            {"role": "system", "content": "You are a careful senior engineer."},
            {"role": "user", "content": f"{question}\n\n```{language}\n{code}```"},
        ]
        bodies = {
            model: json.dumps(
                {"model": model, "messages": messages, "stream": True, "temperature": 0.3}
            )
            for model in CHAT_MODELS
        }
        answer = (
            f"The {noun} is read before its {other} is set. Check it first:\n\n"
            f"```{language}\n{_snippet(rng, language, rng.randint(100, 900))}```\n"
            f"This keeps each {noun} valid and avoids a second query per {other}."
        )
        chats.append((language, bodies, answer, (len(code) + 120) // 4))
    return _Pools(completions, chats)


FIELDS = [str(f.column) for f in Entry._meta.concrete_fields if f.name != "id"]
EVENT_FIELDS = [str(f.column) for f in Event._meta.concrete_fields if f.name != "id"]


_NO_PAYLOAD: dict[str, Any] = {}


class Filler:
    """Makes the rows; the same seed gives the same journal (but for the run id).

    A row costs about 20 draws; ``random.choices`` and ``lognormvariate`` are avoided on
    this path (they cost more than the rest of the row), in favour of a bisection over
    cumulative weights and a table of log-normal samples.
    """

    def __init__(self, *, rows: int, days: int, users: int, seed: int) -> None:
        self.rng = random.Random(seed)  # noqa: S311 - sample data, not secrets
        self.rows = rows
        self.pools = _pools(self.rng)
        self.run = os.urandom(4).hex()
        self.end = datetime.now(UTC).replace(microsecond=0).timestamp()
        self.step = days * 86_400 / max(rows, 1)  # mean seconds between two rows
        self.time = self.end - days * 86_400
        self.users = [f"user{n:03d}" for n in range(1, users + 1)]
        self.addresses = [
            ipaddress.ip_address(f"10.20.{n // 250}.{n % 250 + 1}") for n in range(users)
        ]
        # A few developers send most requests (Zipf-like), as in real teams.
        self.user_weights = _cumulative([1 / (n**0.8) for n in range(1, users + 1)])
        self.clients = [(ua, *parse_user_agent(ua)) for ua in USER_AGENTS]
        self.client_weights = _cumulative(CLIENT_WEIGHTS)
        self.status_weights = _cumulative([share for _, share, _ in STATUSES])
        self.spread = [self.rng.lognormvariate(0, 1) for _ in range(4096)]  # median 1

    def _rare(self) -> str:
        """Now and then a word that few rows have, for the benchmark's rare search."""
        return f"\n(See the {RARE_WORD} notes.)" if self.rng.random() < RARE_SHARE else ""

    def _pick(self, cumulative: list[float]) -> int:
        return bisect(cumulative, self.rng.random())

    def _lognormal(self, median: float, sigma: float) -> float:
        # a unit log-normal sample raised to sigma: the same distribution, from a table
        return median * self.spread[int(self.rng.random() * 4096)] ** sigma

    def chunks(self, size: int) -> Iterator[tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]]:
        """(entry rows, event rows) in FIELDS and EVENT_FIELDS order, ``size`` at a time."""
        done = 0
        while done < self.rows:
            count = min(size, self.rows - done)
            entries: list[tuple[Any, ...]] = []
            events: list[tuple[Any, ...]] = []
            for number in range(done, done + count):
                entries.append(self._entry(number, events))
            done += count
            yield entries, events

    def _entry(self, number: int, events: list[tuple[Any, ...]]) -> tuple[Any, ...]:
        rng = self.rng
        random_ = rng.random
        self.time = min(self.time + rng.expovariate(1 / self.step), self.end)
        user = self._pick(self.user_weights)
        ua, client_name, client_version = self.clients[self._pick(self.client_weights)]
        status, _, error = STATUSES[self._pick(self.status_weights)]
        completion = random_() < 0.7
        if completion:
            pool, models = self.pools.completions, COMPLETION_MODELS
            endpoint, feature = "/v1/completions", Feature.COMPLETION.value
            stream = random_() < 0.2
            first = self._lognormal(90, 0.5)
            latency = first + self._lognormal(180, 0.6)
        else:
            pool, models = self.pools.chats, CHAT_MODELS
            endpoint = "/v1/chat/completions"
            feature = (
                Feature.CHAT.value
                if random_() < 0.6
                else CHAT_FEATURES[int(random_() * len(CHAT_FEATURES))].value
            )
            stream = random_() < 0.9
            first = self._lognormal(350, 0.5)
            latency = first + self._lognormal(6000, 0.7)
        language, bodies, answer, prompt_tokens = pool[int(random_() * len(pool))]
        model = models[int(random_() * len(models))]
        ok = status == 200
        cancelled = status == 499
        response_id = f"cmpl-fill{self.run}{number:x}" if ok or cancelled else ""
        ttft: float | None = first
        if cancelled:
            latency = first * (1 + 2 * random_())
        elif not ok:  # refused or failed before the first byte
            ttft, latency = None, self._lognormal(40, 0.5)
        created = datetime.fromtimestamp(self.time, UTC)
        if ok and completion and random_() < 0.8:
            self._events(events, created, response_id, user, client_name, language, latency)
        return (
            created,
            f"fill{self.run}{number:x}",  # request_id
            "",  # client_request_id
            user + 1,  # user_id
            self.users[user],
            user + 1,  # token_id
            "token",
            self.addresses[user],  # client_ip
            ua,
            client_name,
            client_version,
            endpoint,
            feature,
            model,
            UPSTREAMS[number % len(UPSTREAMS)],
            language,
            stream,
            bodies[model],
            (answer if ok or cancelled else error) + self._rare(),
            response_id,
            prompt_tokens if status not in (400, 401, 429) else None,
            len(answer) // 4 if ok else None,  # completion_tokens
            status,
            error,
            ttft,
            latency,
            cancelled,
            1 if random_() < 0.002 else 0,  # redactions
            False,  # truncated
        )

    def _events(
        self,
        events: list[tuple[Any, ...]],
        created: datetime,
        response_id: str,
        user: int,
        client_name: str,
        language: str,
        latency: float,
    ) -> None:
        shown = created + timedelta(milliseconds=latency + 30)
        base = (response_id, 0, user + 1, self.users[user], client_name, language, _NO_PAYLOAD)
        events.append((shown, "view", *base))
        outcome = self.rng.random()
        if outcome < 0.32:
            events.append((shown + timedelta(seconds=1.5), "select", *base))
        elif outcome < 0.8:
            events.append((shown + timedelta(seconds=0.8), "dismiss", *base))


def _cumulative(weights: Sequence[float]) -> list[float]:
    total = sum(weights)
    cumulative = [running / total for running in accumulate(weights)]
    cumulative[-1] = 1.0  # random() < 1.0: a bisection never runs past the last one
    return cumulative


# The row tuples above are written in this order.
assert FIELDS == [
    "created_at", "request_id", "client_request_id", "user_id", "username", "token_id",
    "auth_mode", "client_ip", "user_agent", "client_name", "client_version", "endpoint",
    "feature", "model", "upstream", "language", "stream", "request_body", "response_text",
    "response_id", "prompt_tokens", "completion_tokens", "status", "error", "ttft_ms",
    "latency_ms", "cancelled", "redactions", "truncated",
], FIELDS  # fmt: skip
assert EVENT_FIELDS == [
    "created_at", "kind", "response_id", "choice_index", "user_id", "username",
    "client_name", "language", "payload",
], EVENT_FIELDS  # fmt: skip
