"""``make bench-routing``'s figures: one row per configuration, and their section of
``bench/RESULTS.md`` (between two markers, which ``make bench``'s rewrite of the file
keeps, as this keeps the race's part)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

START = "<!-- bench-routing: start -->"
END = "<!-- bench-routing: end -->"


@dataclass(frozen=True)
class RunFigures:
    name: str
    hit_rate: float  # prompt tokens found in the replicas' prefix caches / looked up
    completion_ttft_ms: tuple[float, float]  # p50, p95 of the completions waited for
    chat_ttft_ms: tuple[float, float]
    wasted_tokens: float  # generated for completions nobody waited for
    unread: int  # completions typed over
    superseded: int  # of them, answered empty by Kodify
    errors: int
    seconds: float


def percentile(values: Sequence[float], share: float) -> float:
    """Nearest-rank percentile (``share`` in 0..1); NaN for no value."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def table(runs: Sequence[RunFigures]) -> str:
    heading = (
        "| configuration | prefix-cache hit rate | completion TTFT p50 / p95 (ms) "
        "| chat TTFT p50 / p95 (ms) | tokens generated for nobody | typed over "
        "| superseded | errors | run (s) |"
    )
    lines = [heading, "|---|---|---|---|---|---|---|---|---|"]
    for run in runs:
        lines.append(
            f"| {run.name} | {run.hit_rate:.1%} "
            f"| {run.completion_ttft_ms[0]:,.0f} / {run.completion_ttft_ms[1]:,.0f} "
            f"| {run.chat_ttft_ms[0]:,.0f} / {run.chat_ttft_ms[1]:,.0f} "
            f"| {run.wasted_tokens:,.0f} | {run.unread} | {run.superseded} | {run.errors} "
            f"| {run.seconds:.0f} |"
        )
    return "\n".join(lines)


def section(runs: Sequence[RunFigures], *, about: Sequence[str]) -> str:
    """The Markdown section, markers included; ``about``: its bullet lines (the machine,
    the run, the trace)."""
    bullets = "\n".join(f"- {line}" for line in about)
    return (
        f"{START}\n"
        "## Routing: prefix-cache affinity and superseding (`make bench-routing`)\n\n"
        "Written by `make bench-routing` (`bench/routing.py`); each run replaces this "
        "section. Two real vLLM replicas (the CPU build) of the tiny test model behind "
        "one Kodify; the same typing trace replayed in each configuration, each replica's "
        "prefix cache emptied before it. The hit rate is vLLM's own count (prompt tokens "
        "found in the prefix cache over those looked up, both replicas); the latencies "
        "are the clients'; the tokens generated for nobody are vLLM's generated tokens "
        "minus those of the answers a developer waited for (Kodify's journal).\n\n"
        f"{bullets}\n\n"
        f"{table(runs)}\n"
        f"{END}\n"
    )


def kept_section(path: Path) -> str:
    """The section as ``path`` has it now ("" when it has none), for a rewrite to keep."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ""
    start, end = text.find(START), text.find(END)
    if start < 0 or end < start:
        return ""
    return text[start : end + len(END)] + "\n"


def write_section(path: Path, new: str) -> None:
    """Put ``new`` in place of the section in ``path`` (at its end when there is none)."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    old = kept_section(path)
    if old:
        path.write_text(text.replace(old, new), encoding="utf-8")
    elif text:
        path.write_text(text.rstrip("\n") + "\n\n" + new, encoding="utf-8")
    else:
        path.write_text(new, encoding="utf-8")
