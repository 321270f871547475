"""``python -m bench.fim``: the CPU cost of a Tabby completion's pre- and post-processing.

No server and no model: one request's whole path through the gateway's FIM code, timed in
this process over many iterations.  The workload is what a Tabby client sends from a big
file: a **20 KB prefix** of real-looking code, a suffix of a few KB and **10 snippets**
(4 declarations, 3 snippets of changed files, 3 of recently opened files, a few hundred
characters each), with the model's answer a few lines of code, a stop word, and junk the
model wrote past it.  Each of the five languages gets its own code; the CRLF variant is
the same file with Windows line endings.

Preprocessing is what happens between the request's bytes and the upstream's:
``decode_json`` → ``parse_completion`` → ``FimCompletion`` → ``set_model`` →
``use_profile(qwen)`` → ``upstream_body()``.  Post-processing is from the upstream's
bytes to the client's: ``answer(upstream_json)`` (which runs ``postprocess``) and the
``orjson.dumps`` of the answer.  The issue's budget is 0.5 ms for both together.
"""

from __future__ import annotations

import argparse
import gc
import random
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from string import Template
from typing import Any

import orjson

from bench import report
from bench.ttft import percentile
from gateway.fim.profiles import FimProfile, load_shipped
from gateway.openai_api import decode_json, is_tabby_body
from gateway.tabby import parse_completion
from gateway.tabby_completion import FimCompletion

LANGUAGES = ("python", "csharp", "java", "go", "javascript")
PREFIX_CHARS = 20 * 1024
SUFFIX_CHARS = 3 * 1024
SNIPPET_KINDS = (  # Tabby's lists, and how many snippets each gets: 10 in all
    ("declarations", 4),
    ("relevant_snippets_from_changed_files", 3),
    ("relevant_snippets_from_recently_opened_files", 3),
)
MODEL = "Qwen/Qwen2.5-Coder-7B"  # picks the shipped qwen config, as on a real server
PROFILE = "qwen"
BUDGET_US = 500.0
GOAL = report.Goal(
    "FIM pre+post-processing, 20 KB prefix + 10 snippets (us, worst median)",
    "worst total p50 us",
    BUDGET_US,
    higher_is_better=False,
)
# Information: the tail in this thread's CPU time, which leaves out the time other
# processes had the core (on a busy machine the wall-clock p99 is mostly theirs).
GOAL_P99 = report.Goal(
    "the same at p99, CPU time (us, worst)", "worst total cpu p99 us", BUDGET_US, False
)


# -- the code a workload is made of --------------------------------------------------------
#
# Each language has templates (string.Template: `$noun`, `${Noun}`; `$$` is a dollar sign)
# for a unit of code repeated to fill the prefix, the function the cursor is in (its head
# ends the prefix, its tail starts the suffix), a declaration and a chunk of another file
# for the snippets, and the model's answer.  Snippets use other words than the file, so
# that none of them is already in the prefix (the gateway would skip it).


@dataclass(frozen=True)
class Code:
    extension: str
    header: str
    unit: str
    cursor_head: str  # ends the prefix: the cursor is on a new, indented line of a body
    cursor_tail: str  # starts the suffix: the rest of that function
    declaration: str
    chunk: str
    answer: str  # the loop's body, the suffix typed again, a stop word, junk


PYTHON = Code(
    extension="py",
    header='''\
"""The $area service: $noun records and their reports."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from acme.$area.client import ${Noun}Client
from acme.$area.models import $Noun

logger = logging.getLogger(__name__)
''',
    unit='''

class $Noun$Kind:
    """${Verb}s $noun records for the $area service, with a small cache."""

    def __init__(self, client: ${Noun}Client, *, retries: int = $n) -> None:
        self.client = client
        self.retries = retries
        self._cache: dict[str, $Noun] = {}

    def ${verb}_$noun(self, ${noun}_id: str) -> $Noun | None:
        if ${noun}_id in self._cache:
            return self._cache[${noun}_id]
        for attempt in range(self.retries):
            try:
                found = self.client.get_$noun(${noun}_id, timeout=$n)
            except TimeoutError:
                logger.warning("timeout on %s, attempt %d", ${noun}_id, attempt)
                continue
            self._cache[${noun}_id] = found
            return found
        return None


def ${verb}_all_${noun}s(items: list[$Noun], limit: int = $n) -> list[str]:
    result = []
    for item in items[:limit]:
        if item.$field is None:
            continue
        result.append(f"{item.name}={item.$field}")
    return result
''',
    cursor_head='''

def summarize_${noun}s(records: list[$Noun], threshold: float) -> dict[str, float]:
    """Totals per $field of the records above ``threshold``."""
    totals: dict[str, float] = {}
    for record in records:
        ''',
    cursor_tail="""
    return totals

""",
    declaration="""\
@dataclass
class $Noun:
    id: str
    name: str
    $field: str | None = None
    value: float = 0.0
    created_at: datetime = field(default_factory=datetime.now)

    def is_recent(self, days: int = $n) -> bool:
        return datetime.now() - self.created_at < timedelta(days=days)
""",
    chunk="""\
def ${verb}_${noun}_batch(client: ${Noun}Client, ids: list[str]) -> list[$Noun]:
    found = []
    for chunk_start in range(0, len(ids), $n):
        batch = ids[chunk_start : chunk_start + $n]
        found.extend(client.get_many(batch))
    logger.info("${verb}: %d of %d ${noun}s", len(found), len(ids))
    return [item for item in found if item.$field is not None]
""",
    answer="""if record.value < threshold:
            continue
        key = record.$field or "unknown"
        totals[key] = totals.get(key, 0.0) + record.value
    return totals


def summarize_everything(records):
    return {}
<|endoftext|>lorem ipsum dolor sit amet""",
)

CSHARP = Code(
    extension="cs",
    header="""\
using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Microsoft.Extensions.Logging;

namespace Acme.${Area}.Services;
""",
    unit="""
public sealed class $Noun$Kind
{
    private readonly I${Noun}Client _client;
    private readonly ILogger<$Noun$Kind> _logger;
    private readonly Dictionary<string, $Noun> _cache = new();

    public $Noun$Kind(I${Noun}Client client, ILogger<$Noun$Kind> logger, int retries = $n)
    {
        _client = client;
        _logger = logger;
        Retries = retries;
    }

    public int Retries { get; }

    public async Task<$Noun?> $Verb${Noun}Async(string id, CancellationToken token)
    {
        if (_cache.TryGetValue(id, out var cached))
        {
            return cached;
        }
        for (var attempt = 0; attempt < Retries; attempt++)
        {
            try
            {
                var found = await _client.Get${Noun}Async(id, token).ConfigureAwait(false);
                _cache[id] = found;
                return found;
            }
            catch (TimeoutException ex)
            {
                _logger.LogWarning(ex, "Timeout on {Id}, attempt {Attempt}", id, attempt);
            }
        }
        return null;
    }

    public IReadOnlyList<string> ${Verb}All(IEnumerable<$Noun> items) =>
        items.Where(i => i.$Field != null).Take($n).Select(i => $$"{i.Name}={i.$Field}").ToList();
}
""",
    cursor_head="""
public static class ${Noun}Reports
{
    public static Dictionary<string, decimal> Summarize(
        IEnumerable<$Noun> records, decimal threshold)
    {
        var totals = new Dictionary<string, decimal>();
        foreach (var record in records)
        {
            """,
    cursor_tail="""
        }
        return totals;
    }
}
""",
    declaration="""\
public sealed record $Noun(string Id, string Name, string? $Field, decimal Value)
{
    public DateTime CreatedAt { get; init; } = DateTime.UtcNow;

    public bool IsRecent(int days = $n) => DateTime.UtcNow - CreatedAt < TimeSpan.FromDays(days);
}
""",
    chunk="""\
public async Task<IReadOnlyList<$Noun>> ${Verb}BatchAsync(
    IReadOnlyList<string> ids, CancellationToken token)
{
    var found = new List<$Noun>();
    foreach (var batch in ids.Chunk($n))
    {
        found.AddRange(await _client.GetManyAsync(batch, token).ConfigureAwait(false));
    }
    _logger.LogInformation("$Verb: {Found} of {Total}", found.Count, ids.Count);
    return found.Where(item => item.$Field != null).ToList();
}
""",
    answer="""if (record.Value < threshold)
            {
                continue;
            }
            var key = record.$Field ?? "unknown";
            totals[key] = totals.GetValueOrDefault(key) + record.Value;
        }
        return totals;
    }

    public static void Everything() { }
}
<|endoftext|>lorem ipsum dolor sit amet""",
)

JAVA = Code(
    extension="java",
    header="""\
package com.acme.$area.service;

import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.TimeoutException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
""",
    unit="""
final class $Noun$Kind {
    private static final Logger LOG = LoggerFactory.getLogger($Noun$Kind.class);
    private final ${Noun}Client client;
    private final int retries;
    private final Map<String, $Noun> cache = new HashMap<>();

    $Noun$Kind(${Noun}Client client, int retries) {
        this.client = client;
        this.retries = retries;
    }

    Optional<$Noun> $verb$Noun(String id) {
        $Noun cached = cache.get(id);
        if (cached != null) {
            return Optional.of(cached);
        }
        for (int attempt = 0; attempt < retries; attempt++) {
            try {
                $Noun found = client.get$Noun(id, Duration.ofSeconds($n));
                cache.put(id, found);
                return Optional.of(found);
            } catch (TimeoutException e) {
                LOG.warn("timeout on {}, attempt {}", id, attempt, e);
            }
        }
        return Optional.empty();
    }

    List<String> ${verb}All(List<$Noun> items) {
        List<String> result = new ArrayList<>();
        for ($Noun item : items.subList(0, Math.min($n, items.size()))) {
            if (item.get$Field() != null) {
                result.add(item.getName() + "=" + item.get$Field());
            }
        }
        return result;
    }
}
""",
    cursor_head="""
public final class ${Noun}Reports {
    public static Map<String, Double> summarize(List<$Noun> records, double threshold) {
        Map<String, Double> totals = new HashMap<>();
        for ($Noun record : records) {
            """,
    cursor_tail="""
        }
        return totals;
    }
}
""",
    declaration="""\
public record $Noun(String id, String name, String $field, double value, Instant createdAt) {
    public boolean isRecent(int days) {
        return Duration.between(createdAt, Instant.now()).toDays() < days;
    }

    public String get$Field() {
        return $field;
    }
}
""",
    chunk="""\
List<$Noun> ${verb}Batch(${Noun}Client client, List<String> ids) {
    List<$Noun> found = new ArrayList<>();
    for (int start = 0; start < ids.size(); start += $n) {
        found.addAll(client.getMany(ids.subList(start, Math.min(start + $n, ids.size()))));
    }
    LOG.info("$verb: {} of {}", found.size(), ids.size());
    return found.stream().filter(item -> item.get$Field() != null).toList();
}
""",
    answer="""if (record.value() < threshold) {
                continue;
            }
            String key = record.$field() == null ? "unknown" : record.$field();
            totals.merge(key, record.value(), Double::sum);
        }
        return totals;
    }

    public static void everything() {}
}
<|endoftext|>lorem ipsum dolor sit amet""",
)

GO = Code(
    extension="go",
    header="""\
package $area

import (
\t"context"
\t"errors"
\t"fmt"
\t"log/slog"
\t"time"
)
""",
    unit="""
type $Noun$Kind struct {
\tclient  ${Noun}Client
\tretries int
\tcache   map[string]*$Noun
}

func New$Noun$Kind(client ${Noun}Client, retries int) *$Noun$Kind {
\treturn &$Noun$Kind{client: client, retries: retries, cache: map[string]*$Noun{}}
}

func (s *$Noun$Kind) $Verb$Noun(ctx context.Context, id string) (*$Noun, error) {
\tif cached, ok := s.cache[id]; ok {
\t\treturn cached, nil
\t}
\tfor attempt := 0; attempt < s.retries; attempt++ {
\t\tfound, err := s.client.Get$Noun(ctx, id, $n*time.Second)
\t\tif errors.Is(err, context.DeadlineExceeded) {
\t\t\tslog.Warn("timeout", "id", id, "attempt", attempt)
\t\t\tcontinue
\t\t}
\t\tif err != nil {
\t\t\treturn nil, fmt.Errorf("$verb $noun %s: %w", id, err)
\t\t}
\t\ts.cache[id] = found
\t\treturn found, nil
\t}
\treturn nil, nil
}

func ${Verb}All${Noun}s(items []*$Noun, limit int) []string {
\tvar result []string
\tfor i, item := range items {
\t\tif i >= limit || item.$Field == "" {
\t\t\tcontinue
\t\t}
\t\tresult = append(result, fmt.Sprintf("%s=%s", item.Name, item.$Field))
\t}
\treturn result
}
""",
    cursor_head="""
func Summarize${Noun}s(records []*$Noun, threshold float64) map[string]float64 {
\ttotals := map[string]float64{}
\tfor _, record := range records {
\t\t""",
    cursor_tail="""
\t}
\treturn totals
}
""",
    declaration="""\
type $Noun struct {
\tID        string
\tName      string
\t$Field ${Field}Kind
\tValue     float64
\tCreatedAt time.Time
}

func (x *$Noun) IsRecent(days int) bool {
\treturn time.Since(x.CreatedAt) < time.Duration(days)*24*time.Hour
}
""",
    chunk="""\
func ${Verb}Batch(ctx context.Context, client ${Noun}Client, ids []string) ([]*$Noun, error) {
\tvar found []*$Noun
\tfor start := 0; start < len(ids); start += $n {
\t\tbatch, err := client.GetMany(ctx, ids[start:min(start+$n, len(ids))])
\t\tif err != nil {
\t\t\treturn nil, err
\t\t}
\t\tfound = append(found, batch...)
\t}
\treturn found, nil
}
""",
    answer="""if record.Value < threshold {
\t\t\tcontinue
\t\t}
\t\tkey := record.$Field
\t\tif key == "" {
\t\t\tkey = "unknown"
\t\t}
\t\ttotals[key] += record.Value
\t}
\treturn totals
}

func Everything() {}
<|endoftext|>lorem ipsum dolor sit amet""",
)

JAVASCRIPT = Code(
    extension="js",
    header="""\
'use strict';

const { ${Noun}Client } = require('../clients/$noun');
const logger = require('../logger').child({ area: '$area' });
""",
    unit="""
class $Noun$Kind {
  constructor(client, { retries = $n } = {}) {
    this.client = client;
    this.retries = retries;
    this.cache = new Map();
  }

  async $verb$Noun(id) {
    if (this.cache.has(id)) {
      return this.cache.get(id);
    }
    for (let attempt = 0; attempt < this.retries; attempt += 1) {
      try {
        const found = await this.client.get$Noun(id, { timeout: $n * 1000 });
        this.cache.set(id, found);
        return found;
      } catch (error) {
        if (error.code !== 'ETIMEDOUT') {
          throw error;
        }
        logger.warn({ id, attempt }, 'timeout');
      }
    }
    return null;
  }
}

function ${verb}All${Noun}s(items, limit = $n) {
  return items
    .slice(0, limit)
    .filter((item) => item.$field != null)
    .map((item) => `$${item.name}=$${item.$field}`);
}
""",
    cursor_head="""
function summarize${Noun}s(records, threshold) {
  const totals = {};
  for (const record of records) {
    """,
    cursor_tail="""
  }
  return totals;
}

module.exports = { summarize${Noun}s };
""",
    declaration="""\
/**
 * @typedef {Object} $Noun
 * @property {string} id
 * @property {string} name
 * @property {string|null} $field
 * @property {number} value
 * @property {Date} createdAt
 */
function is${Noun}Recent($noun, days = $n) {
  return Date.now() - $noun.createdAt.getTime() < days * 86400000;
}
""",
    chunk="""\
async function ${verb}${Noun}Batch(client, ids) {
  const found = [];
  for (let start = 0; start < ids.length; start += $n) {
    found.push(...(await client.getMany(ids.slice(start, start + $n))));
  }
  logger.info({ found: found.length, total: ids.length }, '$verb');
  return found.filter((item) => item.$field != null);
}
""",
    answer="""if (record.value < threshold) {
      continue;
    }
    const key = record.$field ?? 'unknown';
    totals[key] = (totals[key] || 0) + record.value;
  }
  return totals;
}

function everything() {}
<|endoftext|>lorem ipsum dolor sit amet""",
)

CODE: dict[str, Code] = {
    "python": PYTHON,
    "csharp": CSHARP,
    "java": JAVA,
    "go": GO,
    "javascript": JAVASCRIPT,
}

# The file's words, and other words for the snippets (never found in the prefix).
_NOUNS = (
    "order", "invoice", "customer", "account", "payment", "shipment", "ticket", "session",
    "product", "review", "message", "device", "policy", "budget", "asset", "contract",
)  # fmt: skip
_SNIPPET_NOUNS = (
    "ledger", "tenant", "quota", "webhook", "cohort", "catalog", "voucher", "carrier",
    "dispatch", "forecast",
)  # fmt: skip
_VERBS = ("load", "sync", "validate", "collect", "resolve", "export", "refresh", "archive")
_FIELDS = ("status", "region", "owner", "category", "currency", "priority", "channel")
_KINDS = ("Service", "Repository", "Manager", "Handler", "Store", "Gateway", "Cache")
_AREAS = ("billing", "search", "inventory", "shipping", "analytics")


def _words(rng: random.Random, nouns: Sequence[str]) -> dict[str, str]:
    noun, verb, name = rng.choice(nouns), rng.choice(_VERBS), rng.choice(_FIELDS)
    area = rng.choice(_AREAS)
    return {
        "noun": noun, "Noun": noun.capitalize(), "verb": verb, "Verb": verb.capitalize(),
        "field": name, "Field": name.capitalize(), "n": str(rng.randint(2, 64)),
        "Kind": rng.choice(_KINDS), "area": area, "Area": area.capitalize(),
    }  # fmt: skip


def _fill(template: str, words: Mapping[str, str]) -> str:
    return Template(template).substitute(words)


# -- a workload ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    """One Tabby request and the upstream's answer to it, as bytes on the wire."""

    language: str
    crlf: bool
    body: dict[str, Any]  # the Tabby request
    request: bytes
    upstream_answer: bytes

    @property
    def name(self) -> str:
        return f"{self.language} crlf" if self.crlf else self.language

    @property
    def segments(self) -> dict[str, Any]:
        segments: dict[str, Any] = self.body["segments"]
        return segments

    def snippet_count(self) -> int:
        return sum(len(self.segments.get(key, ())) for key, _ in SNIPPET_KINDS)


def build_workload(
    language: str,
    *,
    crlf: bool = False,
    prefix_chars: int = PREFIX_CHARS,
    suffix_chars: int = SUFFIX_CHARS,
    seed: int = 0,
) -> Workload:
    """A Tabby request from a big ``language`` file: the prefix at least ``prefix_chars``
    long (before CRLF), the suffix at least ``suffix_chars``, and 10 snippets."""
    code = CODE[language]
    rng = random.Random(f"{language}-{seed}")
    own = _words(rng, _NOUNS)  # the file's own words: its header and the cursor's function
    header, head = _fill(code.header, own), _fill(code.cursor_head, own)
    units: list[str] = []
    size = len(header) + len(head)
    while size < prefix_chars:
        units.append(_fill(code.unit, _words(rng, _NOUNS)))
        size += len(units[-1])
    # The first unit loses its first lines so that the prefix is just within the size.
    code_text = "".join(units)
    cut = code_text.find("\n", size - prefix_chars) + 1
    prefix = header + code_text[cut:] + head
    suffix_parts = [_fill(code.cursor_tail, own)]
    while sum(map(len, suffix_parts)) < suffix_chars:
        suffix_parts.append(_fill(code.unit, _words(rng, _NOUNS)))
    suffix = "".join(suffix_parts)
    segments: dict[str, Any] = {
        "prefix": prefix,
        "suffix": suffix,
        "filepath": f"src/{own['area']}/{own['noun']}_reports.{code.extension}",
        "git_url": "https://git.example.com/acme/platform.git",
    }
    for key, count in SNIPPET_KINDS:
        template = code.declaration if key == "declarations" else code.chunk
        snippets = []
        for _ in range(count):
            words = _words(rng, _SNIPPET_NOUNS)
            snippets.append(
                {
                    "filepath": f"src/{words['area']}/{words['noun']}.{code.extension}",
                    "body": _fill(template, words),
                }
            )
        segments[key] = snippets
    if crlf:
        segments = _with_crlf(segments)
    body = {"language": language, "segments": segments}
    answer = _fill(code.answer, own)
    return Workload(
        language=language,
        crlf=crlf,
        body=body,
        request=orjson.dumps(body),
        upstream_answer=upstream_completion(answer),
    )


def _with_crlf(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\n", "\r\n")
    if isinstance(value, list):
        return [_with_crlf(item) for item in value]
    if isinstance(value, dict):
        return {key: _with_crlf(item) for key, item in value.items()}
    return value


def upstream_completion(text: str, model: str = MODEL) -> bytes:
    """vLLM's non-streamed answer to ``/v1/completions`` with ``text``."""
    return orjson.dumps(
        {
            "id": "cmpl-4f1c2e0c9b7d4a45a1e0c1d2b3a4f5e6",
            "object": "text_completion",
            "created": 1_760_000_000,
            "model": model,
            "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3120, "completion_tokens": 64, "total_tokens": 3184},
        }
    )


def qwen_profile() -> FimProfile:
    return load_shipped()[PROFILE]


# -- timing --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    """Per-iteration nanoseconds of one workload."""

    name: str
    pre_ns: list[int]
    post_ns: list[int]
    cpu_ns: list[int]  # the thread's CPU time for pre + post
    prompt_chars: int  # the prompt sent upstream
    answer: str  # the text the client got

    @property
    def total_ns(self) -> list[int]:
        return [pre + post for pre, post in zip(self.pre_ns, self.post_ns, strict=True)]

    def summary(self) -> dict[str, Any]:
        def us(values: Sequence[int]) -> dict[str, float]:
            return {"p50": percentile(values, 50) / 1e3, "p99": percentile(values, 99) / 1e3}

        return {
            "iterations": len(self.pre_ns),
            "prompt_chars": self.prompt_chars,
            "pre_us": us(self.pre_ns),
            "post_us": us(self.post_ns),
            "total_us": us(self.total_ns),
            "total_cpu_us": us(self.cpu_ns),
        }


def one_request(workload: Workload, profile: FimProfile) -> tuple[FimCompletion, bytes, bytes]:
    """The gateway's work for one request, untimed: (completion, upstream body, answer)."""
    completion = _preprocess(workload.request, profile)
    body = completion.upstream_body()
    answer = _postprocess(completion, workload.upstream_answer)
    return completion, body, answer


def _preprocess(request: bytes, profile: FimProfile) -> FimCompletion:
    data = decode_json(request)
    assert is_tabby_body(data)
    completion = FimCompletion(parse_completion(data))
    completion.set_model(MODEL)
    completion.use_profile(profile)
    return completion


def _postprocess(completion: FimCompletion, upstream_answer: bytes) -> bytes:
    answer, _journal = completion.answer(upstream_answer)
    return orjson.dumps(answer)


def measure(
    workload: Workload,
    *,
    iterations: int,
    warmup: int,
    profile: FimProfile | None = None,
    clock: Callable[[], int] = time.perf_counter_ns,
    cpu_clock: Callable[[], int] = time.thread_time_ns,
) -> Timing:
    """Time ``iterations`` requests after ``warmup`` untimed ones, the GC off meanwhile:
    wall-clock time of each half, and the thread's CPU time of both."""
    profile = profile or qwen_profile()
    request, upstream_answer = workload.request, workload.upstream_answer
    pre = [0] * iterations
    post = [0] * iterations
    cpu = [0] * iterations
    completion, _, answer = one_request(workload, profile)
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        for index in range(-warmup, iterations):
            cpu_started = cpu_clock()
            started = clock()
            completion = _preprocess(request, profile)
            completion.upstream_body()
            prepared = clock()
            _postprocess(completion, upstream_answer)
            done = clock()
            cpu_done = cpu_clock()
            if index >= 0:
                pre[index] = prepared - started
                post[index] = done - prepared
                cpu[index] = cpu_done - cpu_started
    finally:
        if was_enabled:
            gc.enable()
    assert completion.prompt is not None
    return Timing(
        name=workload.name,
        pre_ns=pre,
        post_ns=post,
        cpu_ns=cpu,
        prompt_chars=len(completion.prompt.prompt),
        answer=orjson.loads(answer)["choices"][0]["text"],
    )


def workloads(languages: Sequence[str] = LANGUAGES, *, crlf: bool = True) -> list[Workload]:
    found = [build_workload(language) for language in languages]
    if crlf:
        found += [build_workload(language, crlf=True) for language in languages]
    return found


def measure_all(
    *,
    iterations: int = 5000,
    warmup: int = 500,
    languages: Sequence[str] = LANGUAGES,
    crlf: bool = True,
    echo: Callable[[str], None] | None = print,
) -> dict[str, Any]:
    """Every workload timed; the record (with the goal's verdict) for the report."""
    profile = qwen_profile()
    loads = workloads(languages, crlf=crlf)
    results: dict[str, dict[str, Any]] = {}
    if echo:
        echo(_heading(loads[0], iterations))
        echo(_row_header())
    for workload in loads:
        timing = measure(workload, iterations=iterations, warmup=warmup, profile=profile)
        results[workload.name] = {
            "prefix_chars": len(workload.segments["prefix"]),
            "suffix_chars": len(workload.segments["suffix"]),
            "snippets": workload.snippet_count(),
            "request_bytes": len(workload.request),
            **timing.summary(),
        }
        if echo:
            echo(_row(workload.name, results[workload.name]))
    record = verdict(results)
    record.update(
        {
            "profile": PROFILE,
            "model": MODEL,
            "iterations": iterations,
            "warmup": warmup,
            "budget_us": BUDGET_US,
        }
    )
    if echo:
        echo(verdict_line(record))
    return record


def verdict(results: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The goal checked on the worst workload's median (and, as information, its p99)."""
    worst_p50 = max(results, key=lambda name: results[name]["total_us"]["p50"])
    worst_p99 = max(results, key=lambda name: results[name]["total_cpu_us"]["p99"])
    values = {
        GOAL.metric: results[worst_p50]["total_us"]["p50"],
        GOAL_P99.metric: results[worst_p99]["total_cpu_us"]["p99"],
    }
    checks = report.check_goals([GOAL, GOAL_P99], values)
    return {
        "workloads": dict(results),
        "worst_p50": worst_p50,
        "worst_p99": worst_p99,
        "goals": checks,
        "passed": bool(checks[0]["holds"]),
    }


def verdict_line(record: Mapping[str, Any]) -> str:
    p50, p99 = record["goals"][0]["value"], record["goals"][1]["value"]
    word = "PASS" if record["passed"] else "MISS"
    tail = "" if record["goals"][1]["holds"] else "; the CPU p99 is over it"
    return (
        f"{word}: FIM pre+post-processing takes {p50:.0f} us per request (median, worst "
        f"workload: {record['worst_p50']}) against a budget of {record['budget_us']:.0f} us; "
        f"CPU-time p99 {p99:.0f} us at worst ({record['worst_p99']}){tail}"
    )


def _heading(sample: Workload, iterations: int) -> str:
    return (
        f"FIM pre+post-processing per request, config {PROFILE} ({MODEL}): "
        f"{len(sample.segments['prefix']):,}-char prefix, "
        f"{len(sample.segments['suffix']):,}-char suffix, {sample.snippet_count()} snippets; "
        f"{iterations:,} iterations, GC off; microseconds"
    )


_COLUMNS = ("workload", "prompt", "pre p50", "pre p99", "post p50", "post p99", "total p50",
            "total p99", "cpu p50", "cpu p99")  # fmt: skip


def _row_header() -> str:
    return f"{_COLUMNS[0]:<18}" + "".join(f"{title:>10}" for title in _COLUMNS[1:])


def _row(name: str, result: Mapping[str, Any]) -> str:
    cells = [
        f"{result['prompt_chars']:,}",
        *(
            f"{result[part][stat]:.1f}"
            for part in ("pre_us", "post_us", "total_us", "total_cpu_us")
            for stat in ("p50", "p99")
        ),
    ]
    return f"{name:<18}" + "".join(f"{cell:>10}" for cell in cells)


def format_record(record: Mapping[str, Any]) -> str:
    """The table again from a record (for ``bench.run``'s report)."""
    lines = [_row_header()]
    lines += [_row(name, result) for name, result in record["workloads"].items()]
    lines.append(verdict_line(record))
    return "\n".join(lines)


# -- entry point ---------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--iterations", type=int, default=5000)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--languages", nargs="+", choices=LANGUAGES, default=list(LANGUAGES))
    parser.add_argument("--no-crlf", action="store_true", help="skip the CRLF variants")
    parser.add_argument("--json", type=argparse.FileType("w"), help="also write the record here")
    parser.add_argument(
        "--show", choices=LANGUAGES, help="print that language's prompt and answer, then stop"
    )
    args = parser.parse_args(argv)
    if args.show:
        workload = build_workload(args.show)
        _, body, answer = one_request(workload, qwen_profile())
        print(orjson.loads(body)["prompt"])
        print("---- stop:", orjson.loads(body)["stop"])
        print("---- answer:")
        print(orjson.loads(answer)["choices"][0]["text"])
        return 0
    record = measure_all(
        iterations=args.iterations,
        warmup=args.warmup,
        languages=args.languages,
        crlf=not args.no_crlf,
    )
    if args.json:
        args.json.write(orjson.dumps(record, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
