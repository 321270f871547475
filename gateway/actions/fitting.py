"""Fitting an action's code and context into the model's context window.

An action's prompt is its template, the code and the surrounding code; the model must
also have room for its answer.  Too long a prompt makes vLLM refuse the request with a
400 the user cannot act on, so the gateway trims the *context* first (it is for reference
only), keeping the lines nearest the code, and refuses with its own clear 400 only when
the code itself does not fit.

Counting is an estimate, not a tokenizer call on the request path: byte-level BPE
tokenizers (Qwen, Llama, DeepSeek, StarCoder) make at least one byte of every token, and
code averages three to four bytes a token, so two bytes a token over-counts code by
about half and leaves a margin for text that tokenizes worse.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

BYTES_PER_TOKEN = 2
PROSE_BYTES_PER_TOKEN = 4
# The chat template's own tokens around each message (role markers, separators).
TEMPLATE_TOKENS = 16
# The answer's room when the request sets no max_tokens.
DEFAULT_ANSWER_TOKENS = 1024


class DoesNotFit(ValueError):
    """The code alone leaves no room for the answer; the message says by how much."""


@dataclass(frozen=True, slots=True)
class Fitted:
    context: str | None
    context_lines_dropped: int


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text.encode("utf-8", "replace")) / BYTES_PER_TOKEN)


def estimate_prose_tokens(text: str) -> int:
    """English prose (the templates' words) runs about four bytes a token."""
    return math.ceil(len(text.encode("utf-8", "replace")) / PROSE_BYTES_PER_TOKEN)


def fit(
    code: str,
    context: str | None,
    *,
    model: str,
    max_model_len: int | None,
    answer_tokens: int | None,
    extra_text: str = "",
) -> Fitted:
    """``context`` trimmed so that template + code + context + answer fit the model;
    ``extra_text``: the rest of the prompt (the action's instructions, the user's words)."""
    if max_model_len is None:  # the upstream did not say: nothing to fit against
        return Fitted(context, 0)
    answer = answer_tokens or min(DEFAULT_ANSWER_TOKENS, max_model_len // 4)
    fixed = TEMPLATE_TOKENS + estimate_tokens(code) + estimate_prose_tokens(extra_text)
    room = max_model_len - answer - fixed
    if room < 0:
        raise DoesNotFit(
            f"The code is about {estimate_tokens(code):,} tokens; {model!r} has a context of "
            f"{max_model_len:,} tokens, of which {answer:,} are kept for the answer: send a "
            "smaller selection (or a smaller max_tokens)."
        )
    if not context or estimate_tokens(context) <= room:
        return Fitted(context, 0)
    lines = context.split("\n")
    kept = _nearest_lines(lines, _anchor(lines, code), room * BYTES_PER_TOKEN)
    return Fitted("\n".join(lines[i] for i in kept), len(lines) - len(kept))


def _anchor(lines: list[str], code: str) -> int:
    """The context line where the code sits (its first line found in the context), else
    the context's end: surrounding code usually comes before the selection."""
    first = next((line.strip() for line in code.split("\n") if line.strip()), "")
    if first:
        for index, line in enumerate(lines):
            if line.strip() == first:
                return index
    return len(lines)


def _nearest_lines(lines: list[str], anchor: int, budget_bytes: int) -> list[int]:
    """Indexes of the lines nearest ``anchor`` whose bytes fit ``budget_bytes``, in order:
    taken alternately below and above it, the nearest first (the two sides never meet)."""
    kept: list[int] = []
    used = 0
    above, below = anchor - 1, anchor
    while above >= 0 or below < len(lines):
        for index in (below, above):
            if 0 <= index < len(lines):
                cost = len(lines[index].encode("utf-8", "replace")) + 1
                if used + cost > budget_bytes:
                    return sorted(kept)
                kept.append(index)
                used += cost
        above, below = above - 1, below + 1
    return sorted(kept)
