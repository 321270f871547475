"""The race's chart: a PNG of the requested size from any subset of the figures, the same
bytes for the same figures, and linked from RESULTS.md.  No server, no load."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path

import pytest
from matplotlib.image import imread

from bench import chart, race, wrk
from bench.scenarios import SCENARIOS

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Per target, the RPS of each scenario in SCENARIOS' order (a 2-core run's figures).
RPS = {
    "direct": (3825, 5678, 1761, 1612),
    "bare-asgi": (1357, 2848, 1024, 2567),
    "litellm": (47, 53, 22, 18),
    "kodify": (1271, 2450, 728, 1835),
    "full-stack": (650, 1369, 359, 949),
}


def _by_wrk(rps: Mapping[str, Sequence[float]]) -> dict[str, dict[str, wrk.WrkResult]]:
    return {
        name: {
            scenario.name: wrk.WrkResult(
                requests=int(value * 5), duration_s=5, rps=value, latency_ms={"50": 1, "99": 3}
            )
            for scenario, value in zip(SCENARIOS, values, strict=True)
        }
        for name, values in rps.items()
    }


def _subset() -> dict[str, dict[str, wrk.WrkResult]]:
    by_wrk = _by_wrk({name: values for name, values in RPS.items() if name != "litellm"})
    del by_wrk["full-stack"]["stream c=1"]
    return by_wrk


@pytest.mark.parametrize(
    "make", [lambda: _by_wrk(RPS), _subset, dict], ids=["all", "subset", "none"]
)
def test_the_chart_is_a_png_of_the_requested_size(
    tmp_path: Path, make: Callable[[], Mapping[str, Mapping[str, wrk.WrkResult]]]
) -> None:
    path = chart.write_chart(make(), tmp_path / "results.png", title="machine, date, commit")
    assert path == tmp_path / "results.png"
    assert path.read_bytes().startswith(PNG_SIGNATURE)
    height, width = imread(path).shape[:2]
    assert (width, height) == (1400, 600)


def test_the_same_figures_give_the_same_bytes(tmp_path: Path) -> None:
    for by_wrk in (_by_wrk(RPS), _subset()):
        first = chart.write_chart(by_wrk, tmp_path / "first.png", title="same")
        second = chart.write_chart(by_wrk, tmp_path / "second.png", title="same")
        assert first.read_bytes() == second.read_bytes()
        assert b"Software" not in first.read_bytes()


def test_other_figures_give_another_picture(tmp_path: Path) -> None:
    other = _by_wrk(RPS)
    other["kodify"]["stream c=32"] = other["direct"]["stream c=32"]
    first = chart.write_chart(_by_wrk(RPS), tmp_path / "first.png", title="t")
    second = chart.write_chart(other, tmp_path / "second.png", title="t")
    assert first.read_bytes() != second.read_bytes()


@pytest.mark.parametrize(
    ("rps", "label"), [(47.2, "47"), (999, "999"), (1369, "1.4k"), (5678, "5.7k"), (12345, "12k")]
)
def test_bars_are_labelled_short(rps: float, label: str) -> None:
    assert chart.short(rps) == label


def test_every_goal_is_one_of_the_charted_ratios() -> None:
    headings = {heading for _, _, heading in race.RATIOS}
    assert set(chart.CHART_RATIOS) <= headings
    assert set(chart.GOALS) <= set(chart.CHART_RATIOS)


def test_the_results_link_the_chart(tmp_path: Path) -> None:
    out = tmp_path / "RESULTS.md"
    race.write_results(
        "| table |", started=datetime(2026, 1, 2, 3, 4), commit="abc", settings_line="x", path=out
    )
    lines = out.read_text().splitlines()
    link = lines.index("![The race](results.png)")
    assert lines[link - 2].startswith("- load: ") and lines[link - 1] == ""
    assert lines[link + 1] == "" and lines[link + 2] == "| table |"

    race.write_results(
        "| table |",
        started=datetime(2026, 1, 2),
        commit=None,
        settings_line="x",
        path=out,
        chart=None,
    )
    assert "![" not in out.read_text()
