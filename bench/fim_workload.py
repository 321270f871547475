"""The FIM bench's workload: the Tabby request a client sends from a big file, and the
upstream's answer to it, as bytes on the wire.

A workload is a **20 KB prefix** of real-looking code, a suffix of a few KB and
**10 snippets** (4 declarations, 3 snippets of changed files, 3 of recently opened files,
a few hundred characters each), with the model's answer a few lines of code, a stop word,
and junk the model wrote past it.  The code comes from ``bench.fim_code``'s templates,
filled in with words drawn from a seeded generator, so that a workload is the same on
every run.  ``bench.fim_timing`` times the gateway on it; ``bench.scenarios`` sends its
body to a running Kodify.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from string import Template
from typing import Any

import orjson

from bench.fim_code import Code, csharp, go, java, javascript, python
from gateway.fim.profiles import FimProfile, load_shipped

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

CODE: dict[str, Code] = {
    "python": python.PYTHON,
    "csharp": csharp.CSHARP,
    "java": java.JAVA,
    "go": go.GO,
    "javascript": javascript.JAVASCRIPT,
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


def workloads(languages: Sequence[str] = LANGUAGES, *, crlf: bool = True) -> list[Workload]:
    found = [build_workload(language) for language in languages]
    if crlf:
        found += [build_workload(language, crlf=True) for language in languages]
    return found
