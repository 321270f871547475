"""Driving the load for ``make bench``: wrk on every target and scenario, the paired rounds,
the first-chunk times and the in-process FIM timing, into one :class:`Measured`.

Targets take turns within each scenario, and the paired rounds (dummy vs per-user mode,
journal off vs on, OpenAI vs Tabby completions) go back to back and in turns first, so
that drift on a shared machine hits both sides alike.  Every step checks that its server
is still alive; the figures are only collected here, ``bench.run_report`` judges them.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from bench import fim_timing, report, streams, ttft, wrk
from bench.cpu import CpuMeter
from bench.scenarios import (
    AUTH_COST_SCENARIO,
    JOURNAL_COST_SCENARIOS,
    SCENARIOS,
    TTFT_SCENARIO,
    Scenario,
    tabby_pairs,
)
from bench.targets import (
    CEILING,
    DUMMY,
    FULL,
    JOURNAL,
    LITELLM,
    PER_USER,
    BenchError,
    Target,
    ensure_alive,
)

RACED = (CEILING, LITELLM, DUMMY, FULL)


@dataclass(frozen=True)
class Settings:
    duration_s: int
    warmup_s: int
    chunks: int
    ttft_requests: int
    ttft_warmup: int
    results_dir: Path
    redis_url: str | None = None
    auth_rounds: int = 3
    journal: bool = True
    journal_db_url: str | None = None
    journal_rounds: int = 3
    tabby_rounds: int = 2
    fim_iterations: int = 2000
    # The race: the bare-ASGI ceiling, LiteLLM (its venv's python) and the full stack.
    race: bool = False
    litellm_python: str | None = None
    # Long streams held open at once, and streams cut off by their client (0 skips each).
    open_streams: int = 1000
    open_streams_s: float = 60.0
    disconnects: int = 20
    race_dir: Path = Path(__file__).resolve().parent  # RESULTS.md and the chart


LoadAverage = tuple[float, float, float]


@dataclass
class Measured:
    by_wrk: dict[str, dict[str, wrk.WrkResult]] = field(default_factory=dict)  # target → scenario
    warmup_failures: dict[str, dict[str, int]] = field(default_factory=dict)
    first_chunk: dict[str, ttft.TtftResult] = field(default_factory=dict)  # target → TTFT
    # target → scenario → server (its process tree) or service (postgres, redis) → share of
    # one core it used while measured (1.0 = a core)
    cpu: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    logs: dict[str, list[str]] = field(default_factory=dict)
    servers: dict[str, str] = field(default_factory=dict)  # target -> its server's name
    auth_rounds: list[report.AuthCost] = field(default_factory=list)
    journal_rounds: list[report.AuthCost] = field(default_factory=list)
    tabby_rounds: list[report.AuthCost] = field(default_factory=list)  # openai vs tabby
    paired_warmup_failures: list[str] = field(default_factory=list)
    fim: dict[str, Any] | None = None  # bench.fim's record
    loadavg_before: LoadAverage = (0.0, 0.0, 0.0)
    loadavg_after: LoadAverage = (0.0, 0.0, 0.0)
    rss_mb: dict[str, float] = field(default_factory=dict)  # target -> RSS after the load
    open_streams: dict[str, streams.OpenStreamsResult] = field(default_factory=dict)
    disconnects: dict[str, streams.DisconnectResult] = field(default_factory=dict)
    commit: str | None = None  # the code measured, as git names it when the run starts


def measure_load(
    wrk_path: str, targets: Sequence[Target], settings: Settings, scripts: Path, out: Measured
) -> None:
    # Each server's whole process tree (the journal's helper is a child) and the database
    # services; only the target measured is busy, so the shares are its costs.
    meter = CpuMeter({target.server.name: target.server.process.pid for target in targets})
    # Targets take turns within each scenario so that drift on the machine hits them alike.
    for scenario in SCENARIOS:
        for target in targets:
            script = scripts / f"{target.name}-{scenario.kind}.lua"
            script.write_text(
                wrk.lua_script(scenario.body_bytes().decode(), target.request_headers())
            )
            warm = run_wrk(wrk_path, target, scenario, settings.warmup_s, script)
            cpu_before = meter.snapshot()
            result = run_wrk(wrk_path, target, scenario, settings.duration_s, script)
            cpu = CpuMeter.shares(cpu_before, meter.snapshot(), result.duration_s)
            out.by_wrk.setdefault(target.name, {})[scenario.name] = result
            out.warmup_failures.setdefault(target.name, {})[scenario.name] = warm.failures
            out.cpu.setdefault(target.name, {})[scenario.name] = cpu
            print(_progress_line(target, scenario, result, cpu), flush=True)


def _progress_line(
    target: Target, scenario: Scenario, result: wrk.WrkResult, cpu: Mapping[str, float]
) -> str:
    # The CPU shares tell whether a figure is a server's limit or the machine's, and the
    # CPU time per request is what a worker's ceiling follows from.
    shares = ", ".join(
        f"{name} {share:.0%} ({share * 1e6 / result.rps:,.0f} us/req)"
        for name, share in cpu.items()
        if share >= 0.02 and result.rps
    )
    failed = f"   {result.failures} FAILED" if result.failures else ""
    return (
        f"  {scenario.name:<16}{target.name:<15}{result.rps:>10,.0f} req/s"
        f"   p50 {result.p50_ms:6.2f} ms   p99 {result.p99_ms:6.2f} ms   cpu: {shares}{failed}"
    )


def run_wrk(
    wrk_path: str, target: Target, scenario: Scenario, duration_s: int, script: Path
) -> wrk.WrkResult:
    url = target.url + scenario.path
    result, _ = wrk.run(
        wrk_path, url, connections=scenario.connections, duration_s=duration_s, script=script
    )
    ensure_alive(target, scenario.name)
    return result


def measure_pair(
    wrk_path: str,
    base: Target,
    other: Target,
    scenario: Scenario,
    settings: Settings,
    scripts: Path,
    *,
    label: str,
    other_first: bool,
) -> report.AuthCost:
    """``base`` and ``other`` on one scenario, back to back (``other_first`` alternates
    which goes first, so that drift on the machine hits both alike)."""
    measured: dict[str, tuple[wrk.WrkResult, float | None]] = {}
    for target in (other, base) if other_first else (base, other):
        script = scripts / f"{target.name}-{scenario.kind}.lua"
        _, result, cpu_us = measure_once(wrk_path, target, scenario, settings, script)
        measured[target.name] = (result, cpu_us)
    return report.AuthCost(
        label, measured[base.name][0], measured[other.name][0],
        measured[base.name][1], measured[other.name][1],
    )  # fmt: skip


def measure_once(
    wrk_path: str, target: Target, scenario: Scenario, settings: Settings, script: Path
) -> tuple[wrk.WrkResult, wrk.WrkResult, float | None]:
    """Warm-up, then the measurement: (warm-up, result, the server's CPU us per request)."""
    warm = run_wrk(wrk_path, target, scenario, settings.warmup_s, script)
    before = target.server.cpu_seconds()
    result = run_wrk(wrk_path, target, scenario, settings.duration_s, script)
    used = target.server.cpu_seconds() - before
    return warm, result, used * 1e6 / result.requests if used and result.requests else None


def measure_auth_rounds(
    wrk_path: str, targets: Sequence[Target], settings: Settings, scripts: Path, out: Measured
) -> None:
    """Dummy and per-user mode in alternation on the auth-cost scenario, ``auth_rounds``
    times, each pair back to back (and in turns first) so that drift hits both alike."""
    by_name = {target.name: target for target in targets}
    if DUMMY not in by_name or PER_USER not in by_name:
        return
    for index in range(settings.auth_rounds):
        row = measure_pair(
            wrk_path, by_name[DUMMY], by_name[PER_USER], AUTH_COST_SCENARIO, settings, scripts,
            label=f"round {index + 1}", other_first=bool(index % 2),
        )  # fmt: skip
        out.auth_rounds.append(row)
        print(
            f"  auth round {index + 1}    dummy {row.dummy.rps:>8,.0f} req/s"
            f"   per-user {row.per_user.rps:>8,.0f} req/s   cost {row.rps_cost_pct:5.1f}%",
            flush=True,
        )


def measure_journal_rounds(
    wrk_path: str, targets: Sequence[Target], settings: Settings, scripts: Path, out: Measured
) -> None:
    """Journal off and on in alternation, each pair back to back, for each scenario of
    ``JOURNAL_COST_SCENARIOS``; the goal is judged on the median of all pairs."""
    by_name = {target.name: target for target in targets}
    if DUMMY not in by_name or JOURNAL not in by_name:
        return
    for index in range(settings.journal_rounds):
        for scenario in JOURNAL_COST_SCENARIOS:
            row = measure_pair(
                wrk_path, by_name[DUMMY], by_name[JOURNAL], scenario, settings, scripts,
                label=f"{scenario.name} #{index + 1}", other_first=bool(index % 2),
            )  # fmt: skip
            out.journal_rounds.append(row)
            print(
                f"  journal round {index + 1} {scenario.name:<16} off {row.dummy.rps:>8,.0f} "
                f"req/s   on {row.per_user.rps:>8,.0f} req/s   cost {row.rps_cost_pct:5.1f}%",
                flush=True,
            )


def measure_tabby_rounds(
    wrk_path: str, targets: Sequence[Target], settings: Settings, scripts: Path, out: Measured
) -> None:
    """OpenAI and Tabby completions on the same Kodify, each pair back to back (in turns
    first), at each of ``TABBY_CONNECTIONS``, ``tabby_rounds`` times."""
    target = next((t for t in targets if t.name == DUMMY), None)
    if target is None or settings.tabby_rounds <= 0:
        return
    check_tabby_path(target)
    pairs = tabby_pairs()
    for scenario in {s.kind: s for pair in pairs for s in pair}.values():
        script = scripts / f"{target.name}-{scenario.kind}.lua"
        script.write_text(wrk.lua_script(scenario.body_bytes().decode(), target.request_headers()))
    for index in range(settings.tabby_rounds):
        for base, other in pairs:
            measured: dict[str, tuple[wrk.WrkResult, float | None]] = {}
            for scenario in (other, base) if index % 2 else (base, other):
                script = scripts / f"{target.name}-{scenario.kind}.lua"
                warm, result, cpu_us = measure_once(wrk_path, target, scenario, settings, script)
                if warm.failures:
                    out.paired_warmup_failures.append(
                        f"{target.name} {scenario.name} round {index + 1} warm-up: "
                        f"{warm.failures} failed requests"
                    )
                measured[scenario.kind] = (result, cpu_us)
            row = report.AuthCost(
                f"c={base.connections} #{index + 1}",
                measured[base.kind][0], measured[other.kind][0],
                measured[base.kind][1], measured[other.kind][1],
            )  # fmt: skip
            out.tabby_rounds.append(row)
            print(
                f"  tabby round {index + 1} c={base.connections:<3} openai {row.dummy.rps:>8,.0f} "
                f"req/s p50 {row.dummy.p50_ms:5.2f} ms   tabby {row.per_user.rps:>8,.0f} req/s "
                f"p50 {row.per_user.p50_ms:5.2f} ms   cost {row.rps_cost_pct:5.1f}%",
                flush=True,
            )


def check_tabby_path(target: Target) -> None:
    """One Tabby completion before the load: it must answer 200 in Tabby's shape, from a
    prompt in the qwen config's FIM layout (else the bench would measure something else)."""
    tabby = tabby_pairs()[0][1]
    body = {**tabby.body, "debug_options": {"return_prompt": True}}
    request = urllib.request.Request(
        target.url + tabby.path,
        data=orjson.dumps(body),
        headers=target.request_headers(),
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            answer = orjson.loads(response.read())
    except (urllib.error.URLError, OSError, orjson.JSONDecodeError) as exc:
        raise BenchError(f"the Tabby completion before the load failed: {exc}") from None
    debug = answer.get("debug_data") if isinstance(answer, dict) else None
    prompt = debug.get("prompt") if isinstance(debug, dict) else None
    if not isinstance(prompt, str) or not prompt.startswith("<|fim_prefix|>"):
        raise BenchError(
            "the Tabby completion before the load did not come from the qwen config's FIM "
            f"prompt: {str(answer)[:300]}"
        )


def measure_fim_cpu(settings: Settings, out: Measured) -> None:
    """``bench.fim`` in this process, before any server starts (the machine is quiet)."""
    if settings.fim_iterations <= 0:
        return
    print("\n== FIM pre+post-processing in this process (bench.fim)", flush=True)
    out.fim = fim_timing.measure_all(
        iterations=settings.fim_iterations, warmup=max(1, settings.fim_iterations // 10)
    )
    print(flush=True)


def measure_ttft(targets: Sequence[Target], settings: Settings, out: Measured) -> None:
    stream = TTFT_SCENARIO
    for target in targets:
        result = ttft.measure(
            target.url + stream.path,
            stream.body_bytes(),
            target.request_headers(),
            count=settings.ttft_requests,
            warmup=settings.ttft_warmup,
        )
        ensure_alive(target, "the TTFT measurement")
        out.first_chunk[target.name] = result
        print(
            f"  TTFT            {target.name:<15}   p50 {result.p50_ms:6.2f} ms"
            f"   p99 {result.p99_ms:6.2f} ms",
            flush=True,
        )


def measure_streams(targets: Sequence[Target], settings: Settings, out: Measured) -> None:
    """Each raced target (Kodify bare and full stack, the ceiling, LiteLLM) holds
    ``open_streams`` streams for ``open_streams_s``, then has ``disconnects`` streams cut off
    by their client (``bench.streams``)."""
    upstream, *relays = targets
    for target in relays:
        if target.name not in RACED:
            continue
        if settings.open_streams:
            held = streams.open_streams(
                target, upstream, count=settings.open_streams, hold_s=settings.open_streams_s
            )
            out.open_streams[target.name] = held
            print(
                f"  open streams    {target.name:<15}{held.requests:>6} held "
                f"{settings.open_streams_s:g} s, {held.errors} errors, RSS "
                f"{held.rss_before_mb or 0:.0f} -> {held.rss_peak_mb or 0:.0f} MB, worst chunk "
                f"{held.worst_lateness_ms or 0:.0f} ms late",
                flush=True,
            )
        if settings.disconnects:
            cut = streams.disconnects(target, upstream, times=settings.disconnects)
            out.disconnects[target.name] = cut
            closed = (
                f"upstream closed p50 {cut.p50_ms:.1f} ms max {cut.max_ms:.1f} ms"
                if cut.closed_ms
                else "upstream never seen closed"
            )
            print(
                f"  disconnects     {target.name:<15}{cut.times:>6} cut, {closed}, "
                f"{cut.not_closed} not",
                flush=True,
            )
