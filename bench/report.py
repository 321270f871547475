"""Turning measurements into the printed tables, the goal check and the JSON record."""

from __future__ import annotations

import json
import math
import re
import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.ttft import TtftResult
from bench.wrk import WrkResult


@dataclass(frozen=True)
class Comparison:
    """One scenario measured on the baseline (the fake, directly) and on a candidate."""

    scenario: str
    baseline: WrkResult
    candidate: WrkResult

    @property
    def ratio(self) -> float:
        return self.candidate.rps / self.baseline.rps if self.baseline.rps else math.nan

    @property
    def added_p50_ms(self) -> float:
        return self.candidate.p50_ms - self.baseline.p50_ms

    @property
    def added_p99_ms(self) -> float:
        return self.candidate.p99_ms - self.baseline.p99_ms


@dataclass(frozen=True)
class Goal:
    """A target from the issue, checked against one named metric (see :func:`metrics`)."""

    label: str
    metric: str
    limit: float
    higher_is_better: bool

    def holds(self, value: float) -> bool:
        return value >= self.limit if self.higher_is_better else value <= self.limit

    def describe(self) -> str:
        return f"{'≥' if self.higher_is_better else '≤'} {self.limit:g}"


def metrics(
    comparisons: Sequence[Comparison], ttft: Mapping[str, TtftResult], candidate: str
) -> dict[str, float]:
    """Flat names for the numbers the goals speak of, e.g. ``"stream c=32 rps"``."""
    values: dict[str, float] = {}
    for row in comparisons:
        values[f"{row.scenario} rps"] = row.candidate.rps
        values[f"{row.scenario} added p50 ms"] = row.added_p50_ms
        values[f"{row.scenario} added p99 ms"] = row.added_p99_ms
    if "direct" in ttft and candidate in ttft:
        values["ttft added p50 ms"] = ttft[candidate].p50_ms - ttft["direct"].p50_ms
        values["ttft added p99 ms"] = ttft[candidate].p99_ms - ttft["direct"].p99_ms
    return values


def check_goals(goals: Sequence[Goal], values: Mapping[str, float]) -> list[dict[str, Any]]:
    return [
        {
            "goal": goal.label,
            "limit": goal.describe(),
            "value": values.get(goal.metric),
            "holds": goal.metric in values and goal.holds(values[goal.metric]),
        }
        for goal in goals
    ]


# -- printing ----------------------------------------------------------------------------

_COLUMNS = (
    ("scenario", 16), ("RPS direct", 11), ("RPS {c}", 11), ("ratio", 7),
    ("p50 direct", 12), ("p50 {c}", 12), ("+p50", 11),
    ("p99 direct", 12), ("p99 {c}", 12), ("+p99", 11),
)  # fmt: skip


def format_comparisons(comparisons: Sequence[Comparison], candidate: str) -> str:
    header = [title.format(c=candidate) for title, _ in _COLUMNS]
    # A long candidate name widens its columns rather than running into the next one.
    widths = [
        max(width, len(title) + 2) for title, (_, width) in zip(header, _COLUMNS, strict=True)
    ]
    rows = [header] + [_comparison_cells(row) for row in comparisons]
    return "\n".join(_line(cells, widths) for cells in rows)


def _comparison_cells(row: Comparison) -> list[str]:
    return [
        row.scenario,
        f"{row.baseline.rps:,.0f}",
        f"{row.candidate.rps:,.0f}",
        f"{row.ratio:.2f}",
        _ms(row.baseline.p50_ms),
        _ms(row.candidate.p50_ms),
        _ms(row.added_p50_ms, sign=True),
        _ms(row.baseline.p99_ms),
        _ms(row.candidate.p99_ms),
        _ms(row.added_p99_ms, sign=True),
    ]


def _line(cells: Sequence[str], widths: Sequence[int]) -> str:
    first, *rest = zip(cells, widths, strict=True)
    return f"{first[0]:<{first[1]}}" + "".join(f"{cell:>{width}}" for cell, width in rest)


def _ms(value: float, *, sign: bool = False) -> str:
    return f"{value:+.2f} ms" if sign else f"{value:.2f} ms"


def format_ttft(ttft: Mapping[str, TtftResult], candidate: str) -> str:
    direct, via = ttft["direct"], ttft[candidate]
    rows = [
        ("", "p50", "p99"),
        ("direct", _ms(direct.p50_ms), _ms(direct.p99_ms)),
        (candidate, _ms(via.p50_ms), _ms(via.p99_ms)),
        ("added", _ms(via.p50_ms - direct.p50_ms, sign=True),
         _ms(via.p99_ms - direct.p99_ms, sign=True)),
    ]  # fmt: skip
    return "\n".join(f"{name:<10}{p50:>11}{p99:>11}" for name, p50, p99 in rows)


def format_goals(checks: Sequence[Mapping[str, Any]]) -> str:
    return "\n".join(
        f"  {'holds ' if check['holds'] else 'MISSED'}  {check['goal']:<42}"
        f"{_value(check['value']):>10}  (target {check['limit']})"
        for check in checks
    )


def _value(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.2f}"


# -- server logs -------------------------------------------------------------------------

_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ ")
_LEVEL = re.compile(r"\b(WARNING|ERROR|CRITICAL)\b")
_TRACEBACK = "Traceback (most recent call last):"
_CHAINING = ("During handling of the above exception", "The above exception was the direct")


def summarise_log(lines: Sequence[str]) -> dict[str, int]:
    """Problems in a server's log, counted: a traceback by its exception line, a
    WARNING/ERROR line by its text without the timestamp (so that repeats add up)."""
    found: Counter[str] = Counter()
    in_traceback = False
    for raw in lines:
        line = raw.rstrip("\n")
        if line.startswith(_TRACEBACK):
            in_traceback = True
        elif in_traceback:
            if line and not line[0].isspace() and not line.startswith(_CHAINING):
                found[line] += 1
                in_traceback = False
        elif _LEVEL.search(line):
            found[_TIMESTAMP.sub("", line)] += 1
    return dict(found.most_common())


def format_log_summary(target: str, problems: Mapping[str, int]) -> str:
    total = sum(problems.values())
    lines = [f"{target} logged {total} problems while measured:"]
    lines += [f"  {count:>6}x {text[:160]}" for text, count in list(problems.items())[:10]]
    return "\n".join(lines)


# -- the record --------------------------------------------------------------------------


def wrk_record(result: WrkResult) -> dict[str, Any]:
    return {
        "requests": result.requests,
        "duration_s": result.duration_s,
        "rps": result.rps,
        "latency_ms": result.latency_ms,
        "non_2xx": result.non_2xx,
        "socket_errors": result.socket_errors,
    }


def ttft_record(result: TtftResult) -> dict[str, Any]:
    return {
        "requests": len(result.samples_ms),
        "p50_ms": result.p50_ms,
        "p99_ms": result.p99_ms,
        "failures": result.failures,
    }


def write_json(path: Path, record: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n")


# -- the cost of per-user authentication -------------------------------------------------


@dataclass(frozen=True)
class AuthCost:
    """One scenario on Kodify in dummy mode and in per-user mode, measured side by side.

    ``*_cpu_us`` is the server's CPU time per request (None when unknown): on a machine
    whose cores are all busy it moves less with the noise than the RPS does.
    """

    scenario: str
    dummy: WrkResult
    per_user: WrkResult
    dummy_cpu_us: float | None = None
    per_user_cpu_us: float | None = None

    @property
    def rps_cost_pct(self) -> float:
        """How much of the dummy-mode RPS per-user mode loses (negative: it served more)."""
        if not self.dummy.rps:
            return math.nan
        return (1 - self.per_user.rps / self.dummy.rps) * 100

    @property
    def cpu_cost_us(self) -> float | None:
        if self.dummy_cpu_us is None or self.per_user_cpu_us is None:
            return None
        return self.per_user_cpu_us - self.dummy_cpu_us


def median_cost_pct(rows: Sequence[AuthCost]) -> float | None:
    """The median share of RPS lost over paired rounds (None without any)."""
    costs = sorted(row.rps_cost_pct for row in rows)
    if not costs:
        return None
    middle = len(costs) // 2
    return costs[middle] if len(costs) % 2 else (costs[middle - 1] + costs[middle]) / 2


def format_auth_costs(rows: Sequence[AuthCost], label: str = "per-user") -> str:
    """Rows of Kodify's default set-up against one that adds something (``label``)."""
    lines = [
        f"{'scenario':<16}{'RPS dummy':>11}{'RPS ' + label:>14}{'cost':>9}"
        f"{'CPU/req dummy':>15}{label:>11}{'added':>10}"
    ]
    for row in rows:
        lines.append(
            f"{row.scenario:<16}{row.dummy.rps:>11,.0f}{row.per_user.rps:>14,.0f}"
            f"{row.rps_cost_pct:>8.1f}%{_us(row.dummy_cpu_us):>15}"
            f"{_us(row.per_user_cpu_us):>11}{_us(row.cpu_cost_us, sign=True):>10}"
        )
    return "\n".join(lines)


def _us(value: float | None, *, sign: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value:+.0f} us" if sign else f"{value:.0f} us"


def auth_cost_record(row: AuthCost) -> dict[str, Any]:
    return {
        "dummy_rps": row.dummy.rps,
        "per_user_rps": row.per_user.rps,
        "rps_cost_pct": row.rps_cost_pct,
        "dummy_cpu_us_per_request": row.dummy_cpu_us,
        "per_user_cpu_us_per_request": row.per_user_cpu_us,
    }


# -- one target, two kinds of request (Tabby completions vs OpenAI ones) ------------------
#
# An :class:`AuthCost` row pairs any two measurements taken back to back; here ``dummy``
# is the baseline request kind and ``per_user`` the other.

_PAIRED_KEYS = (
    "base_rps", "other_rps", "rps_cost_pct",
    "base_p50_ms", "other_p50_ms", "added_p50_ms",
    "base_p99_ms", "other_p99_ms", "added_p99_ms",
    "base_cpu_us", "other_cpu_us", "added_cpu_us",
)  # fmt: skip


def paired_figures(row: AuthCost) -> dict[str, float | None]:
    base, other = row.dummy, row.per_user
    return {
        "base_rps": base.rps,
        "other_rps": other.rps,
        "rps_cost_pct": row.rps_cost_pct,
        "base_p50_ms": base.p50_ms,
        "other_p50_ms": other.p50_ms,
        "added_p50_ms": other.p50_ms - base.p50_ms,
        "base_p99_ms": base.p99_ms,
        "other_p99_ms": other.p99_ms,
        "added_p99_ms": other.p99_ms - base.p99_ms,
        "base_cpu_us": row.dummy_cpu_us,
        "other_cpu_us": row.per_user_cpu_us,
        "added_cpu_us": row.cpu_cost_us,
    }


def median_figures(rows: Sequence[AuthCost]) -> dict[str, float | None]:
    """Each figure's median over paired rounds (None where no round has it)."""
    figures = [paired_figures(row) for row in rows]
    medians: dict[str, float | None] = {}
    for key in _PAIRED_KEYS:
        values = [value for value in (f[key] for f in figures) if value is not None]
        medians[key] = statistics.median(values) if values else None
    return medians


def format_paired(
    rows: Sequence[tuple[str, Mapping[str, float | None]]], base: str, other: str
) -> str:
    """One line per ``(label, paired_figures)``: RPS, p50, p99 and CPU per request of the
    baseline and the other kind, and what the other adds."""
    titles = [
        "", f"RPS {base}", f"RPS {other}", "cost",
        f"p50 {base}", f"p50 {other}", "+p50",
        f"p99 {base}", f"p99 {other}", "+p99",
        f"CPU/req {base}", other, "added",
    ]  # fmt: skip
    widths = [16] + [max(10, len(title) + 2) for title in titles[1:]]
    lines = [_line(titles, widths)]
    for label, f in rows:
        cells = [
            label,
            _number(f["base_rps"]), _number(f["other_rps"]), _pct(f["rps_cost_pct"]),
            _opt_ms(f["base_p50_ms"]), _opt_ms(f["other_p50_ms"]), _opt_ms(f["added_p50_ms"], True),
            _opt_ms(f["base_p99_ms"]), _opt_ms(f["other_p99_ms"]), _opt_ms(f["added_p99_ms"], True),
            _us(f["base_cpu_us"]), _us(f["other_cpu_us"]), _us(f["added_cpu_us"], sign=True),
        ]  # fmt: skip
        lines.append(_line(cells, widths))
    return "\n".join(lines)


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}%"


def _opt_ms(value: float | None, sign: bool = False) -> str:
    return "n/a" if value is None else _ms(value, sign=sign)
