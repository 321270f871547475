"""Chart geometry for the dashboards, drawn by the templates as inline SVG.

Computed here rather than in the templates (which cannot subtract), and drawn on the
server so the console needs no JavaScript library and no internet access.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from django.utils.safestring import SafeString, mark_safe

COLUMN_CHART_WIDTH = 480
COLUMN_CHART_HEIGHT = 120
LABEL_EVERY_MAX = 8  # at most this many x labels, whatever the number of columns


@dataclass(frozen=True)
class Column:
    x: float
    y: float
    width: float
    height: float
    center: float  # where the label goes
    label: str  # under the column, or "" where it would crowd its neighbours
    title: str  # the tooltip: the label and the exact value
    href: str = ""  # where a click on the column leads


@dataclass(frozen=True)
class ColumnChart:
    width: int
    height: int
    columns: list[Column]
    top: str  # the value the chart's top line stands for

    @property
    def markup(self) -> SafeString:
        """The columns as SVG elements, escaped.  Written here, not by a template loop
        nor format_html: a year of days in six charts is thousands of elements, which
        either takes a third of a second to write."""
        label_y = self.height + 14
        parts = []
        for column in self.columns:
            bar = (
                f'<rect x="{column.x}" y="{column.y}" width="{column.width}" '
                f'height="{column.height}" class="journal-chart-bar">'
                f"<title>{escape(column.title)}</title></rect>"
            )
            if column.href:
                bar = f'<a href="{escape(column.href)}">{bar}</a>'
            parts.append(bar)
            if column.label:
                parts.append(
                    f'<text x="{column.center}" y="{label_y}" text-anchor="middle" '
                    f'class="journal-chart-label">{escape(column.label)}</text>'
                )
        return mark_safe("".join(parts))  # noqa: S308 - numbers and escaped text only


def column_chart(
    points: Sequence[tuple[str, float]],
    *,
    unit: str = "",
    top: float | None = None,
    links: Sequence[str] = (),
    width: int = COLUMN_CHART_WIDTH,
    height: int = COLUMN_CHART_HEIGHT,
) -> ColumnChart:
    """Columns scaled to ``top`` (a rate's 100 %), else to the highest value."""
    top = top or max((value for _, value in points), default=0) or 1
    step = width / max(len(points), 1)
    every = max(1, -(-len(points) // LABEL_EVERY_MAX))  # ceiling division
    columns = []
    for index, (label, value) in enumerate(points):
        bar_height = height * value / top
        columns.append(
            Column(
                x=round(index * step + step * 0.1, 2),
                y=round(height - bar_height, 2),
                width=round(step * 0.8, 2),
                height=round(bar_height, 2),
                center=round(index * step + step / 2, 2),
                label=label if index % every == 0 else "",
                title=f"{label}: {_number(value)}{unit}",
                href=links[index] if index < len(links) else "",
            )
        )
    return ColumnChart(width=width, height=height, columns=columns, top=f"{_number(top)}{unit}")


def percent_of(value: float | None, top: float) -> float:
    """A horizontal bar's length, in percent of the widest."""
    if not value or not top:
        return 0.0
    return round(100 * value / top, 1)


def _number(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"
