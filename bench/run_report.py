"""What one ``make bench`` run found: its JSON record and its printed report.

From the :class:`~bench.measure.Measured` figures: the side-by-side comparisons, the
costs of per-user authentication, of the journal and of the Tabby path, the issue's goals
checked, the servers' log problems, and the failures that make a run's figures invalid.
The tables themselves are ``bench.report``'s; this module knows which ones a run has.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import subprocess
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from bench import fim_timing, report, streams, wrk
from bench.measure import Measured, Settings
from bench.scenarios import (
    AUTH_COST_GOAL,
    AUTH_COST_SCENARIO,
    COMPLETIONS_PATH,
    GOALS,
    JOURNAL_COST_GOAL,
    SCENARIOS,
    TABBY_BASE,
    TABBY_CONNECTIONS,
    TABBY_MODEL,
    TABBY_OTHER,
    TTFT_SCENARIO,
    tabby_pairs,
)
from bench.servers import BENCH_USER_LIMITS, REPO
from bench.targets import DUMMY, PEERS, PER_USER, PER_USER_REDIS


def comparisons(measured: Measured, candidate: str) -> list[report.Comparison]:
    direct, via = measured.by_wrk["direct"], measured.by_wrk[candidate]
    return [report.Comparison(s.name, direct[s.name], via[s.name]) for s in SCENARIOS]


def failures(measured: Measured) -> list[str]:
    """Why the figures cannot be trusted: any non-2xx answer, socket error or broken stream
    (Kodify's and the references'; a peer's own are reported apart, see peer_failures)."""
    found = []
    for target, results in measured.by_wrk.items():
        if target in PEERS:
            continue
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
    for target, first in measured.first_chunk.items():
        if first.failures and target not in PEERS:
            found.append(f"{target} TTFT: {first.failures} streams not 200 or without [DONE]")
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


def peer_failures(measured: Measured) -> list[str]:
    """A peer's failed requests under the same load: its result, not a broken run."""
    found = []
    for target in PEERS:
        for scenario, result in measured.by_wrk.get(target, {}).items():
            if result.failures:
                found.append(
                    f"{target} {scenario}: {result.failures} requests failed "
                    f"({result.non_2xx} non-2xx, socket errors {result.socket_errors})"
                )
        streams = measured.first_chunk.get(target)
        if streams is not None and streams.failures:
            found.append(f"{target} TTFT: {streams.failures} streams not 200 or without [DONE]")
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
        "commit": measured.commit,
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
        "streams": {
            name: {
                "open": _as_record(measured.open_streams.get(name)),
                "disconnects": _as_record(measured.disconnects.get(name)),
                "goals": [
                    {"goal": label, "holds": holds, "measured": text}
                    for label, holds, text in streams.goals(
                        measured.open_streams.get(name), measured.disconnects.get(name)
                    )
                ],
            }
            for name in {*measured.open_streams, *measured.disconnects}
        },
        "server_log_problems": {
            target: report.summarise_log(lines) for target, lines in measured.logs.items()
        },
        "failures": found,
        "valid": not found,
    }


def _as_record(result: Any) -> dict[str, Any] | None:
    return None if result is None else dataclasses.asdict(result)


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
        print(fim_timing.format_record(measured.fim))
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
        print(fim_timing.format_record(measured.fim))


def git_commit() -> str | None:
    """The code the servers run: read when they start (a commit made during the run must
    not be named), "-dirty" when the working tree differs from it."""
    done = subprocess.run(
        ["git", "describe", "--always", "--dirty", "--abbrev=7"], cwd=REPO,
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    return done.stdout.strip() or None
