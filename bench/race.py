"""The race table of ``make bench``: every target side by side in one run, and its ratios.

Kodify bare (dummy auth, no journal, SQLite) and Kodify as production runs it (per-user
tokens, limits in Redis, the journal in PostgreSQL) against the fake upstream itself, the
bare-ASGI ceiling (``bench.ceiling``) and LiteLLM's proxy, all measured in the same run
and the same turns, so the ratios hold whatever the machine's speed.  Written to
``bench/RESULTS.md`` with the machine named.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path

from bench import wrk
from bench.routing_report import kept_section
from bench.scenarios import SCENARIOS
from bench.targets import CEILING, DUMMY, FULL, LITELLM
from gateway.tabby import cpu_info

NONE = "n/a"
RESULTS_MD = Path(__file__).resolve().parent / "RESULTS.md"
DIRECT = "direct"
# Column order: the references first, then Kodify.
ORDER = (DIRECT, CEILING, LITELLM, DUMMY, FULL)
# (numerator, denominator, heading): the ratios the performance goals are stated in.
RATIOS = (
    (DUMMY, LITELLM, "bare / LiteLLM"),
    (FULL, LITELLM, "full / LiteLLM"),
    (DUMMY, CEILING, "bare / ceiling"),
    (FULL, CEILING, "full / ceiling"),
    (FULL, DUMMY, "full / bare"),
)


def machine() -> str:
    return f"{platform.node()}: {os.cpu_count()} cores, {cpu_info()}"


def table(
    by_wrk: Mapping[str, Mapping[str, wrk.WrkResult]],
    rss_mb: Mapping[str, float],
    ttft_p50_ms: Mapping[str, float] | None = None,
) -> str:
    present = [name for name in ORDER if name in by_wrk]
    ratios = [r for r in RATIOS if r[0] in by_wrk and r[1] in by_wrk]
    heading = ["scenario", *[f"{name} RPS" for name in present], *[r[2] for r in ratios]]
    lines = ["| " + " | ".join(heading) + " |", "|" + "---|" * len(heading)]
    for scenario in SCENARIOS:
        cells = [scenario.name]
        for name in present:
            result = by_wrk[name].get(scenario.name)
            cells.append(f"{result.rps:,.0f}" if result else NONE)
        for top, bottom, _ in ratios:
            a, b = by_wrk[top].get(scenario.name), by_wrk[bottom].get(scenario.name)
            cells.append(f"{a.rps / b.rps:.2f}" if a and b and b.rps else NONE)
        lines.append("| " + " | ".join(cells) + " |")
    # Latency added at c=1, where it is the gateway's own and not queueing.
    lines += [
        "",
        "| target | added p50 at c=1 (ms) | added p99 at c=1 (ms) | added TTFT p50 (ms) "
        "| RSS after load (MB) |",
        "|---|---|---|---|---|",
    ]
    direct = by_wrk.get(DIRECT, {})
    first = ttft_p50_ms or {}
    for name in present[1:]:
        cells = [name]
        mine, base = by_wrk[name].get("non-stream c=1"), direct.get("non-stream c=1")
        if mine and base:
            cells += [f"{mine.p50_ms - base.p50_ms:+.2f}", f"{mine.p99_ms - base.p99_ms:+.2f}"]
        else:
            cells += [NONE, NONE]
        cells.append(
            f"{first[name] - first[DIRECT]:+.2f}" if name in first and DIRECT in first else NONE
        )
        cells.append(f"{rss_mb[name]:.0f}" if name in rss_mb else NONE)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def cpu_table(
    by_wrk: Mapping[str, Mapping[str, wrk.WrkResult]],
    cpu: Mapping[str, Mapping[str, Mapping[str, float]]],
    servers: Mapping[str, str],
    chunks: int,
) -> str:
    """CPU time per request at c=32: the server's process tree, then what PostgreSQL and
    Redis spent for it, and per streamed chunk (what a stream costs more than the same
    answer in one piece, over its chunks)."""
    heading = (
        "| target | non-stream: server | + postgres | + redis | = total (us/req) "
        "| stream: total (us/req) | per chunk (us) |"
    )
    lines = [heading, "|---|---|---|---|---|---|---|"]
    for name in [n for n in ORDER if n in by_wrk and n != DIRECT]:
        costs = {
            kind: _costs_us(
                by_wrk[name].get(f"{kind} c=32"),
                cpu.get(name, {}).get(f"{kind} c=32"),
                servers.get(name),
            )
            for kind in ("non-stream", "stream")
        }
        plain, streamed = costs["non-stream"], costs["stream"]
        cells = [name]
        cells += [f"{value:,.0f}" for value in plain] if plain else [NONE] * 4
        cells.append(f"{streamed[3]:,.0f}" if streamed else NONE)
        cells.append(f"{(streamed[3] - plain[3]) / chunks:,.1f}" if plain and streamed else NONE)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _costs_us(
    result: wrk.WrkResult | None, shares: Mapping[str, float] | None, server: str | None
) -> tuple[float, float, float, float] | None:
    if not result or not result.rps or not shares or server is None or server not in shares:
        return None
    own, pg, redis = (
        shares.get(key, 0.0) * 1e6 / result.rps for key in (server, "postgres", "redis")
    )
    return own, pg, redis, own + pg + redis


def write_results(
    text: str,
    *,
    started: datetime,
    commit: str | None,
    settings_line: str,
    path: Path = RESULTS_MD,
    chart: str | None = "results.png",
) -> None:
    """``chart``: the picture of the race (``bench.chart``) beside ``path``, linked.  The
    section ``make bench-routing`` wrote there (``bench.routing_report``) is kept."""
    link = f"![The race]({chart})\n\n" if chart else ""
    routing = kept_section(path)
    path.write_text(
        "# Kodify benchmark results\n\n"
        "Written by `make bench` (`bench/race.py`); each run replaces it (all but the\n"
        "routing section at the end). Every target was measured in the same run, in turns,\n"
        "against the same fake upstream, so the ratios are what to compare between runs and\n"
        "machines, not the absolute figures.\n\n"
        f"- machine: {machine()}\n"
        f"- run: {started:%Y-%m-%d %H:%M} UTC, commit {commit or 'unknown'}\n"
        f"- load: {settings_line}\n\n"
        f"{link}"
        f"{text}\n" + (f"\n{routing}" if routing else "")
    )


def rss_of(pids: Mapping[str, int]) -> dict[str, float]:
    """Resident memory of each target's server process now, in MB (Linux)."""
    found = {}
    for name, pid in pids.items():
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    found[name] = int(line.split()[1]) / 1024
        except OSError:
            continue
    return found


def race_names(names: Sequence[str]) -> bool:
    """Whether the run had more than the classic comparison (a race worth writing down)."""
    return any(name in names for name in (CEILING, LITELLM, FULL))
