"""The race as a picture: ``bench/results.png``, linked from ``bench/RESULTS.md``.

The table gives the figures; the chart is for seeing at a glance where Kodify stands
between the ceiling and LiteLLM, and how far each ratio is from its goal.  The RPS axis
is logarithmic because LiteLLM runs about fifty times slower than the rest: on a linear
axis its bars would not show.  The figure is drawn on a ``Figure`` of its own with the
Agg canvas, never through pyplot, so that no display or global state is involved, and
saved without the software tag so that the same figures give the same bytes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from bench import wrk
from bench.race import DIRECT, ORDER, RATIOS
from bench.scenarios import SCENARIOS
from bench.targets import CEILING, DUMMY, FULL, LITELLM

CHART_PNG = Path(__file__).resolve().parent / "results.png"
SIZE_IN = (14.0, 6.0)
DPI = 100  # 1400 x 600 px
# The ratios that sit on a 0 to 1 scale (those over LiteLLM are tens to a hundred), and the
# performance goals stated in them.
CHART_RATIOS = ("bare / ceiling", "full / ceiling", "full / bare")
GOALS = {"full / bare": 0.80, "full / ceiling": 0.65}
# One colour per target and per ratio, the same in every run.
COLOURS = {
    DIRECT: "#9e9e9e",
    CEILING: "#6baed6",
    LITELLM: "#e6550d",
    DUMMY: "#3182bd",
    FULL: "#31a354",
    "bare / ceiling": "#6baed6",
    "full / ceiling": "#31a354",
    "full / bare": "#756bb1",
}
# On two lines: the ratios' panel is too narrow for "non-stream c=32" side by side.
_TICKS = [s.name.replace(" c=", "\nc=") for s in SCENARIOS]


def write_chart(
    by_wrk: Mapping[str, Mapping[str, wrk.WrkResult]],
    path: Path = CHART_PNG,
    *,
    title: str,
) -> Path:
    figure = Figure(figsize=SIZE_IN, dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    rps_axes, ratio_axes = figure.subplots(1, 2, width_ratios=(3, 2))
    _rps_panel(rps_axes, by_wrk)
    _ratio_panel(ratio_axes, by_wrk)
    figure.suptitle(title, fontsize=12)
    figure.savefig(path, dpi=DPI, format="png", metadata={"Software": None})
    return path


def short(rps: float) -> str:
    """``1369`` → ``"1.4k"``, ``47.2`` → ``"47"``, ``12345`` → ``"12k"``."""
    if rps >= 10_000:
        return f"{rps / 1000:.0f}k"
    if rps >= 1000:
        return f"{rps / 1000:.1f}k"
    return f"{rps:.0f}"


def _rps_panel(axes: Axes, by_wrk: Mapping[str, Mapping[str, wrk.WrkResult]]) -> None:
    present = [name for name in ORDER if name in by_wrk]
    width = 0.8 / max(len(present), 1)
    values = []
    for index, name in enumerate(present):
        xs, heights = [], []
        for position, scenario in enumerate(SCENARIOS):
            result = by_wrk[name].get(scenario.name)
            if result is not None and result.rps > 0:  # a log axis has no room for 0
                xs.append(position + (index - (len(present) - 1) / 2) * width)
                heights.append(result.rps)
        bars = axes.bar(xs, heights, width, label=name, color=COLOURS.get(name))
        axes.bar_label(bars, [short(h) for h in heights], fontsize=7, padding=1)
        values += heights
    axes.set_yscale("log")
    if values:  # room below the smallest bar and above the tallest one's label
        axes.set_ylim(10 ** math.floor(math.log10(min(values))), max(values) * 3)
    axes.set_xticks(range(len(SCENARIOS)), _TICKS)
    axes.set_xlim(-0.5, len(SCENARIOS) - 0.5)
    axes.set_ylabel("requests per second (log scale)")
    axes.set_title("Throughput", fontsize=11)
    axes.grid(axis="y", which="major", alpha=0.3)
    axes.set_axisbelow(True)
    if present:
        axes.legend(fontsize=8, loc="upper left", ncols=len(present))


def _ratio_panel(axes: Axes, by_wrk: Mapping[str, Mapping[str, wrk.WrkResult]]) -> None:
    ratios = [r for r in RATIOS if r[2] in CHART_RATIOS and r[0] in by_wrk and r[1] in by_wrk]
    width = 0.8 / max(len(ratios), 1)
    top = 1.0
    for index, (numerator, denominator, heading) in enumerate(ratios):
        xs, heights = [], []
        for position, scenario in enumerate(SCENARIOS):
            a = by_wrk[numerator].get(scenario.name)
            b = by_wrk[denominator].get(scenario.name)
            if a is not None and b is not None and b.rps:
                xs.append(position + (index - (len(ratios) - 1) / 2) * width)
                heights.append(a.rps / b.rps)
        colour = COLOURS.get(heading)
        bars = axes.bar(xs, heights, width, label=heading, color=colour)
        axes.bar_label(bars, [f"{h:.2f}" for h in heights], fontsize=7, padding=1)
        top = max([top, *heights])
        goal = GOALS.get(heading)
        if goal is not None:
            axes.axhline(goal, color=colour, linestyle="--", linewidth=1.2)
            axes.annotate(
                f"{heading} goal ≥ {goal:.2f}",
                (1.0, goal),
                xycoords=("axes fraction", "data"),
                xytext=(-3, 2),
                textcoords="offset points",
                ha="right",
                va="bottom",
                fontsize=8,
                color=colour,
            )
    axes.set_ylim(0, top * 1.2)  # room for the labels and the legend
    axes.set_xticks(range(len(SCENARIOS)), _TICKS)
    axes.set_xlim(-0.5, len(SCENARIOS) - 0.5)
    axes.set_ylabel("ratio of RPS")
    axes.set_title("Ratios against the goals (dashed)", fontsize=11)
    axes.grid(axis="y", alpha=0.3)
    axes.set_axisbelow(True)
    if ratios:
        axes.legend(fontsize=8, loc="upper left", ncols=len(ratios))
