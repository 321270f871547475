"""``make bench``: the fake vLLM upstream measured directly and through Kodify, side by side.

One run starts the fake upstream and Kodify (one uvicorn worker, as in production) on
127.0.0.1, drives every scenario with wrk against each target in turn, times the first
stream chunk with a small asyncio client, prints the comparison and writes it to
``bench/results/<timestamp>.json``.

New comparisons slot in as data: a :class:`Scenario` in ``SCENARIOS``, or a function
that starts a target (per-user auth, the journal on, a LiteLLM peer) in ``CANDIDATES``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from types import FrameType
from typing import Any

import orjson

from bench import fim, report, ttft, wrk
from bench.servers import (
    BENCH_USER_LIMITS,
    REPO,
    ServerProcess,
    StartupError,
    start_fake_upstream,
    start_kodify,
    start_kodify_per_user,
)

RESULTS_DIR = Path(__file__).resolve().parent / "results"
FAKE_MODEL = "fake-model"


class BenchError(RuntimeError):
    """The run cannot go on (a server died); the message says why."""


# -- what is measured --------------------------------------------------------------------


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
TABBY_MODEL = fim.MODEL
FAKE_MODELS = (TABBY_MODEL, FAKE_MODEL)
COMPLETIONS_PATH = "/v1/completions"
TABBY_CONNECTIONS = (1, 32)
TABBY_BASE, TABBY_OTHER = "openai", "tabby"


@cache
def tabby_pairs() -> tuple[tuple[Scenario, Scenario], ...]:
    """(OpenAI completion, Tabby completion) at each concurrency, measured in pairs on
    the same Kodify.

    The Tabby body is a client's request from a big Python file (``bench.fim``: a 20 KB
    prefix, a 3 KB suffix, 10 snippets).  The OpenAI body is the very request Kodify sends
    upstream for it (the FIM prompt, stop words, max_tokens), as a client that builds its
    own prompt would send it: the fake then does the same work for both, and what the
    Tabby path adds is Kodify's: a bigger body to read, the prompt to build and the
    answer to clean up."""
    tabby = fim.build_workload("python")
    _, upstream, _ = fim.one_request(tabby, fim.qwen_profile())
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


# -- where it is measured ----------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    name: str
    url: str
    server: ServerProcess
    headers: Mapping[str, str] = field(default_factory=dict)

    def request_headers(self) -> dict[str, str]:
        return {"Content-Type": "application/json", **self.headers}


def direct_target(stack: ExitStack, workdir: Path, chunks: int) -> Target:
    """The baseline: the fake vLLM itself."""
    server, url = start_fake_upstream(workdir / "fake", chunks, FAKE_MODELS)
    stack.callback(server.stop)
    return Target("direct", url, server)


DUMMY = "kodify"
PER_USER = "per-user"
PER_USER_REDIS = "per-user-redis"
JOURNAL = "journal-on"


def kodify_target(stack: ExitStack, workdir: Path, upstream: Target) -> Target:
    """Kodify with its defaults: embedded SQLite, no authentication (dummy mode), no journal."""
    server, url = start_kodify(workdir / "kodify", upstream.url)
    stack.callback(server.stop)
    return Target(DUMMY, url, server)


def per_user_target(stack: ExitStack, workdir: Path, upstream: Target) -> Target:
    """Kodify in per-user mode: every request carries a user's token, checked against its
    keyed hash (the record cached for 1 s), noted for the last-use batch, and passed
    through the user's limits (in process: the bench runs without Redis)."""
    server, url, token = start_kodify_per_user(workdir / "per-user", upstream.url)
    stack.callback(server.stop)
    return Target(PER_USER, url, server, headers={"Authorization": f"Bearer {token}"})


def per_user_redis_target(redis_url: str) -> Callable[[ExitStack, Path, Target], Target]:
    """Per-user mode with the limits in Redis (``--redis-url``), as several workers have them."""

    def start(stack: ExitStack, workdir: Path, upstream: Target) -> Target:
        server, url, token = start_kodify_per_user(
            workdir / PER_USER_REDIS, upstream.url, {"REDIS_URL": redis_url}, "Kodify Redis"
        )
        stack.callback(server.stop)
        return Target(PER_USER_REDIS, url, server, headers={"Authorization": f"Bearer {token}"})

    return start


def journal_target(database_url: str | None) -> Callable[[ExitStack, Path, Target], Target]:
    """Kodify with the journal on (LOGS=true): every request becomes a journal row, written
    by the background writer to ``--journal-db-url`` (PostgreSQL, as in production) or,
    without it, to the embedded SQLite database."""

    def start(stack: ExitStack, workdir: Path, upstream: Target) -> Target:
        extra = {"LOGS": "true", **({"DB_URL": database_url} if database_url else {})}
        server, url = start_kodify(workdir / JOURNAL, upstream.url, extra, "Kodify journal")
        stack.callback(server.stop)
        return Target(JOURNAL, url, server)

    return start


# Each candidate is compared with the direct target; add a function here to add a column
# set (it may create users and return their token in ``Target.headers``).
CANDIDATES: tuple[Callable[[ExitStack, Path, Target], Target], ...] = (
    kodify_target,
    per_user_target,
)


# -- running -----------------------------------------------------------------------------


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


LoadAverage = tuple[float, float, float]


@dataclass
class Measured:
    by_wrk: dict[str, dict[str, wrk.WrkResult]] = field(default_factory=dict)  # target → scenario
    warmup_failures: dict[str, dict[str, int]] = field(default_factory=dict)
    first_chunk: dict[str, ttft.TtftResult] = field(default_factory=dict)  # target → TTFT
    # target → scenario → server → share of one core it used while measured (1.0 = a core)
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


def measure_load(
    wrk_path: str, targets: Sequence[Target], settings: Settings, scripts: Path, out: Measured
) -> None:
    servers = [target.server for target in targets]
    # Targets take turns within each scenario so that drift on the machine hits them alike.
    for scenario in SCENARIOS:
        for target in targets:
            script = scripts / f"{target.name}-{scenario.kind}.lua"
            script.write_text(
                wrk.lua_script(scenario.body_bytes().decode(), target.request_headers())
            )
            warm = run_wrk(wrk_path, target, scenario, settings.warmup_s, script)
            cpu_before = [server.cpu_seconds() for server in servers]
            result = run_wrk(wrk_path, target, scenario, settings.duration_s, script)
            cpu = {
                server.name: (server.cpu_seconds() - before) / result.duration_s
                for server, before in zip(servers, cpu_before, strict=True)
            }
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
    out.fim = fim.measure_all(
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


def ensure_alive(target: Target, during: str) -> None:
    if not target.server.alive():
        raise BenchError(f"{target.name} exited during {during}:\n{target.server.tail()}")


def run_bench(settings: Settings) -> int:
    wrk_path = wrk.ensure_installed()
    started = datetime.now(UTC)
    measured = Measured(loadavg_before=os.getloadavg())
    warn_if_busy(measured.loadavg_before)
    measure_fim_cpu(settings, measured)
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kodify-bench-")))
        direct = direct_target(stack, workdir, settings.chunks)
        starts = list(CANDIDATES)
        if settings.redis_url:
            starts.append(per_user_redis_target(settings.redis_url))
        if settings.journal:
            starts.append(journal_target(settings.journal_db_url))
        candidates = [start(stack, workdir, direct) for start in starts]
        targets = [direct, *candidates]
        measured.servers = {t.name: t.server.name for t in targets}
        print(_banner(targets, settings), flush=True)
        measure_load(wrk_path, targets, settings, workdir, measured)
        measure_auth_rounds(wrk_path, targets, settings, workdir, measured)
        measure_journal_rounds(wrk_path, targets, settings, workdir, measured)
        measure_tabby_rounds(wrk_path, targets, settings, workdir, measured)
        measure_ttft(targets, settings, measured)
        measured.logs = {t.name: t.server.lines_after_startup() for t in targets}
        measured.loadavg_after = os.getloadavg()
    # Every server is stopped here; what follows only reports.
    urls = {target.name: target.url for target in targets}
    record = build_record(measured, settings, urls, [c.name for c in candidates], started)
    print_report(measured, record, [c.name for c in candidates])
    path = settings.results_dir / f"{started:%Y%m%d-%H%M%S}.json"
    report.write_json(path, record)
    print(f"\nresults: {path}")
    return 0 if record["valid"] else 1


def warn_if_busy(load: LoadAverage) -> None:
    # Kodify, the fake and wrk already share the cores; anything else running skews the
    # comparison, and the record keeps the load so that a reader can tell.
    cpus = os.cpu_count() or 1
    if load[0] > cpus / 2:
        print(
            f"note: the machine is busy (load average {load[0]:.1f} on {cpus} cores); "
            "expect noisy figures",
            flush=True,
        )


def _banner(targets: Sequence[Target], settings: Settings) -> str:
    runs = len(SCENARIOS) * len(targets)
    seconds = runs * (settings.warmup_s + settings.duration_s)
    where = ", ".join(f"{t.name} {t.url}" for t in targets)
    tabby = ""
    if settings.tabby_rounds > 0 and any(t.name == DUMMY for t in targets):
        tabby_runs = settings.tabby_rounds * len(TABBY_CONNECTIONS) * 2
        tabby = (
            f", {tabby_runs} paired OpenAI/Tabby completion runs (about "
            f"{tabby_runs * (settings.warmup_s + settings.duration_s)} s)"
        )
    return (
        f"targets: {where}\n"
        f"{runs} wrk runs of {settings.warmup_s} s warm-up + {settings.duration_s} s "
        f"(about {seconds} s){tabby}, then {settings.ttft_requests} sequential streams per "
        "target"
    )


# -- reporting ---------------------------------------------------------------------------


def comparisons(measured: Measured, candidate: str) -> list[report.Comparison]:
    direct, via = measured.by_wrk["direct"], measured.by_wrk[candidate]
    return [report.Comparison(s.name, direct[s.name], via[s.name]) for s in SCENARIOS]


def failures(measured: Measured) -> list[str]:
    """Why the figures cannot be trusted: any non-2xx answer, socket error or broken stream."""
    found = []
    for target, results in measured.by_wrk.items():
        for scenario, result in results.items():
            if result.failures:
                found.append(
                    f"{target} {scenario}: {result.non_2xx} non-2xx, "
                    f"socket errors {result.socket_errors}"
                )
            if measured.warmup_failures[target][scenario]:
                found.append(
                    f"{target} {scenario} warm-up: "
                    f"{measured.warmup_failures[target][scenario]} failed requests"
                )
    for target, streams in measured.first_chunk.items():
        if streams.failures:
            found.append(f"{target} TTFT: {streams.failures} streams not 200 or without [DONE]")
    paired = (
        ("auth", measured.auth_rounds, DUMMY, PER_USER),
        ("journal", measured.journal_rounds, "journal off", "journal on"),
        ("tabby", measured.tabby_rounds, TABBY_BASE, TABBY_OTHER),
    )
    for what, rows, base, other in paired:
        for row in rows:
            for name, result in ((base, row.dummy), (other, row.per_user)):
                if result.failures:
                    found.append(
                        f"{what} {row.scenario} {name}: {result.non_2xx} non-2xx, "
                        f"socket errors {result.socket_errors}"
                    )
    found += measured.paired_warmup_failures
    return found


def auth_costs(measured: Measured, per_user: str = PER_USER) -> list[report.AuthCost]:
    """Dummy mode against per-user mode, scenario by scenario (empty unless both ran)."""
    if DUMMY not in measured.by_wrk or per_user not in measured.by_wrk:
        return []
    return [
        report.AuthCost(
            scenario.name,
            measured.by_wrk[DUMMY][scenario.name],
            measured.by_wrk[per_user][scenario.name],
            _cpu_us_per_request(measured, DUMMY, scenario.name),
            _cpu_us_per_request(measured, per_user, scenario.name),
        )
        for scenario in SCENARIOS
    ]


def _cpu_us_per_request(measured: Measured, target: str, scenario: str) -> float | None:
    # The target's own Kodify: the one of the servers that worked while it was measured.
    shares = measured.cpu.get(target, {}).get(scenario, {})
    server = measured.servers.get(target)
    rps = measured.by_wrk[target][scenario].rps
    if server not in shares or not rps:
        return None
    return shares[server] * 1e6 / rps


def auth_cost_check(rounds: Sequence[report.AuthCost]) -> dict[str, Any] | None:
    median = report.median_cost_pct(rounds)
    if median is None:
        return None
    return report.check_goals([AUTH_COST_GOAL], {"median": median})[0]


def journal_cost_check(rounds: Sequence[report.AuthCost]) -> dict[str, Any] | None:
    median = report.median_cost_pct(rounds)
    if median is None:
        return None
    return report.check_goals([JOURNAL_COST_GOAL], {"median": median})[0]


def tabby_record(measured: Measured) -> dict[str, Any] | None:
    if not measured.tabby_rounds:
        return None
    base, other = tabby_pairs()[0]
    return {
        "model": TABBY_MODEL,
        "path": COMPLETIONS_PATH,
        "openai_body_bytes": len(base.body_bytes()),
        "tabby_body_bytes": len(other.body_bytes()),
        "rounds": [
            {"round": row.scenario, **report.paired_figures(row)} for row in measured.tabby_rounds
        ],
        "median": {
            f"c={connections}": report.median_figures(tabby_rows(measured, connections))
            for connections in TABBY_CONNECTIONS
        },
    }


def tabby_rows(measured: Measured, connections: int) -> list[report.AuthCost]:
    return [row for row in measured.tabby_rounds if row.scenario.startswith(f"c={connections} ")]


def goal_checks(measured: Measured, candidate: str) -> list[dict[str, Any]]:
    values = report.metrics(comparisons(measured, candidate), measured.first_chunk, candidate)
    return report.check_goals(GOALS, values)


def build_record(
    measured: Measured,
    settings: Settings,
    urls: Mapping[str, str],
    candidates: Sequence[str],
    started: datetime,
) -> dict[str, Any]:
    found = failures(measured)
    costs = auth_costs(measured)
    redis_costs = auth_costs(measured, PER_USER_REDIS)
    return {
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": _git_commit(),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "load_average_before": measured.loadavg_before,
            "load_average_after": measured.loadavg_after,
        },
        "wrk": wrk.version(wrk.ensure_installed()),
        "settings": {
            "duration_s": settings.duration_s,
            "warmup_s": settings.warmup_s,
            "chunks": settings.chunks,
            "wrk_threads": 1,
            "ttft_requests": settings.ttft_requests,
            "kodify_workers": 1,
            "per_user_limits": BENCH_USER_LIMITS,
        },
        "targets": dict(urls),
        "scenarios": [
            {"name": s.name, "path": s.path, "connections": s.connections, "body": s.body}
            for s in SCENARIOS
        ],
        "ttft_scenario": {"path": TTFT_SCENARIO.path, "body": TTFT_SCENARIO.body},
        "load": {
            target: {
                scenario: {**report.wrk_record(r), "cpu_share": measured.cpu[target][scenario]}
                for scenario, r in results.items()
            }
            for target, results in measured.by_wrk.items()
        },
        "ttft": {target: report.ttft_record(r) for target, r in measured.first_chunk.items()},
        "goals": {name: goal_checks(measured, name) for name in candidates},
        "auth_cost": {
            "scenarios": {row.scenario: report.auth_cost_record(row) for row in costs},
            "rounds": [report.auth_cost_record(row) for row in measured.auth_rounds],
            "median_rps_cost_pct": report.median_cost_pct(measured.auth_rounds),
            "goal": auth_cost_check(measured.auth_rounds),
            "with_redis": {row.scenario: report.auth_cost_record(row) for row in redis_costs},
        },
        "journal_cost": {
            "rounds": [
                {"round": row.scenario, **report.auth_cost_record(row)}
                for row in measured.journal_rounds
            ],
            "median_rps_cost_pct": report.median_cost_pct(measured.journal_rounds),
            "goal": journal_cost_check(measured.journal_rounds),
        },
        "tabby": tabby_record(measured),
        "fim_cpu": measured.fim,
        "server_log_problems": {
            target: report.summarise_log(lines) for target, lines in measured.logs.items()
        },
        "failures": found,
        "valid": not found,
    }


def print_report(measured: Measured, record: Mapping[str, Any], candidates: Sequence[str]) -> None:
    for name in candidates:
        print(f"\n== direct vs {name} (one uvicorn worker; wrk -t1, latency per request)")
        print(report.format_comparisons(comparisons(measured, name), name))
        count = len(measured.first_chunk[name].samples_ms)
        print(
            f"\n== time to first stream chunk, c=1, {count} sequential requests, chunks 1 ms apart"
        )
        print(report.format_ttft(measured.first_chunk, name))
        print(f"\n== the issue's targets for {name} (information, not a pass/fail)")
        print(report.format_goals(record["goals"][name]))
    costs = auth_costs(measured)
    if costs:
        print("\n== the cost of per-user authentication: dummy mode vs per-user mode")
        print(report.format_auth_costs(costs))
    if measured.auth_rounds:
        print(
            f"\n== the same, {AUTH_COST_SCENARIO.name}, {len(measured.auth_rounds)} paired "
            "rounds (the target is checked on their median)"
        )
        print(report.format_auth_costs(measured.auth_rounds))
        print(report.format_goals([record["auth_cost"]["goal"]]))
    redis_costs = auth_costs(measured, PER_USER_REDIS)
    if redis_costs:
        print("\n== dummy mode vs per-user mode with the limits in Redis (information)")
        print(report.format_auth_costs(redis_costs))
    if measured.journal_rounds:
        print(
            f"\n== the cost of the journal: off vs on, {len(measured.journal_rounds)} paired "
            "rounds (the target is checked on their median)"
        )
        print(report.format_auth_costs(measured.journal_rounds, label="journal"))
        print(report.format_goals([record["journal_cost"]["goal"]]))
    if measured.tabby_rounds:
        print_tabby(measured, record)
    elif measured.fim:
        print("\n== FIM pre+post-processing in process (bench.fim)")
        print(fim.format_record(measured.fim))
    for target, problems in record["server_log_problems"].items():
        if problems:
            print("\n" + report.format_log_summary(target, problems))
    if record["failures"]:
        print("\nTHE FIGURES ARE NOT VALID: some requests failed", file=sys.stderr)
        print("\n".join("  " + line for line in record["failures"]), file=sys.stderr)


def print_tabby(measured: Measured, record: Mapping[str, Any]) -> None:
    tabby = record["tabby"]
    print(
        f"\n== Tabby completions vs OpenAI completions through {DUMMY}, "
        f"{len(measured.tabby_rounds) // len(TABBY_CONNECTIONS)} rounds of pairs "
        f"(Tabby: {tabby['tabby_body_bytes']:,} B, "
        f"20 KB prefix + 10 snippets; OpenAI: the {tabby['openai_body_bytes']:,} B request "
        "Kodify makes of it)"
    )
    rows = [(row.scenario, report.paired_figures(row)) for row in measured.tabby_rounds]
    rows += [(f"median {name}", figures) for name, figures in tabby["median"].items()]
    print(report.format_paired(rows, TABBY_BASE, TABBY_OTHER))
    if measured.fim:
        print("\nFIM pre+post-processing alone, in process (bench.fim, microseconds):")
        print(fim.format_record(measured.fim))


def _git_commit() -> str | None:
    done = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
        check=False,
    )  # fmt: skip
    return done.stdout.strip() or None


# -- entry point -------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> Settings:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--duration", type=int, default=5, help="seconds per measurement")
    parser.add_argument("--warmup", type=int, default=1, help="seconds of warm-up before each")
    parser.add_argument("--chunks", type=int, default=16, help="chunks per fake stream")
    parser.add_argument("--ttft-requests", type=int, default=200)
    parser.add_argument(
        "--auth-rounds",
        type=int,
        default=3,
        help="paired dummy/per-user measurements of non-stream c=32 for the auth cost",
    )
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument(
        "--redis-url",
        help="also measure per-user mode with its limits in this Redis (e.g. "
        "redis://127.0.0.1:6379/0); the bench itself never reads REDIS_URL",
    )
    parser.add_argument("--no-journal", action="store_true", help="skip the journal-on comparison")
    parser.add_argument(
        "--journal-db-url",
        help="PostgreSQL database for the journal-on Kodify (e.g. "
        "postgresql://postgres@127.0.0.1:5432/kodify_bench); default: embedded SQLite",
    )
    parser.add_argument("--journal-rounds", type=int, default=3)
    parser.add_argument(
        "--tabby-rounds",
        type=int,
        default=2,
        help="paired OpenAI/Tabby completion measurements at c=1 and c=32 (0 skips them)",
    )
    parser.add_argument(
        "--fim-iterations",
        type=int,
        default=2000,
        help="iterations of bench.fim's in-process FIM timing per workload (0 skips it)",
    )
    args = parser.parse_args(argv)
    return Settings(
        duration_s=args.duration,
        warmup_s=args.warmup,
        chunks=args.chunks,
        ttft_requests=args.ttft_requests,
        ttft_warmup=20,
        results_dir=args.results_dir,
        redis_url=args.redis_url,
        auth_rounds=args.auth_rounds,
        journal=not args.no_journal,
        journal_db_url=args.journal_db_url,
        journal_rounds=args.journal_rounds,
        tabby_rounds=args.tabby_rounds,
        fim_iterations=args.fim_iterations,
    )


class Terminated(Exception):
    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _unwind_on_signals() -> None:
    # Every way out must unwind the ExitStack, which stops the servers. SIGINT is reset too:
    # a shell that starts the bench in the background hands it down ignored.
    def terminate(signum: int, frame: FrameType | None) -> None:
        raise Terminated(signum)

    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGHUP, terminate)


def main(argv: Sequence[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else list(argv)
    if any(a == "--journal-rows" or a.startswith("--journal-rows=") for a in arguments):
        from bench import journal  # the console's pages over N rows: no servers, no wrk

        return journal.main(arguments)
    settings = parse_args(argv)
    _unwind_on_signals()
    try:
        return run_bench(settings)
    except KeyboardInterrupt:
        print("\ninterrupted; every process the bench started is stopped", file=sys.stderr)
        return 130
    except Terminated as exc:
        print(f"\n{exc}: every process the bench started is stopped", file=sys.stderr)
        return 128 + exc.signum
    except (BenchError, StartupError, wrk.WrkError, EOFError, OSError) as exc:
        print(f"\nbench failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
