"""Small server-rendered SVG charts: the geometry is computed here, the markup is the
template `snippets/line_chart.html` / `snippets/bar_chart.html` (auto-escaped like any page).
No chart library and nothing from a CDN: a chart is a few dozen SVG elements, and each page
shows the same numbers in a table beside it, so the chart is never the only way to read them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

WIDTH = 360
HEIGHT = 90
PAD = 6  # room for the dots at the edges


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    label: str  # the point's tooltip: what and how much


@dataclass(frozen=True)
class LineChart:
    width: int
    height: int
    points: list[Point]
    top: str  # the value of the top edge, e.g. "12.5 s"

    @property
    def polyline(self) -> str:
        return " ".join(f"{p.x:.1f},{p.y:.1f}" for p in self.points)


def line_chart(values: Sequence[float], labels: Sequence[str], *, unit: str = "s") -> LineChart | None:
    """A line through `values` in order (oldest first), scaled from 0 to their maximum;
    None when there is nothing to draw."""
    if not values:
        return None
    top = max(values) or 1.0
    step = (WIDTH - 2 * PAD) / max(len(values) - 1, 1)
    points = [
        Point(PAD + i * step, HEIGHT - PAD - (value / top) * (HEIGHT - 2 * PAD), f"{label}: {value:.2f} {unit}")
        for i, (value, label) in enumerate(zip(values, labels, strict=True))
    ]
    return LineChart(WIDTH, HEIGHT, points, f"{top:.2f} {unit}")


@dataclass(frozen=True)
class Bar:
    y: float
    width: float
    label: str
    below_line: bool


@dataclass(frozen=True)
class BarChart:
    width: int
    height: int
    bars: list[Bar]
    bar_height: float
    line_x: float  # the target line, e.g. 99%
    line_label: str


def percent_bars(rows: Sequence[tuple[str, float]], *, line: float) -> BarChart | None:
    """Horizontal bars of percentages (0–100) with a vertical line at `line`; a bar under the
    line is flagged so the template can colour it."""
    if not rows:
        return None
    bar_height, gap = 14.0, 4.0
    height = int(len(rows) * (bar_height + gap) + gap)
    bars = [
        Bar(gap + i * (bar_height + gap), WIDTH * percent / 100, f"{label}: {percent:.2f}%", percent < line)
        for i, (label, percent) in enumerate(rows)
    ]
    return BarChart(WIDTH, height, bars, bar_height, WIDTH * line / 100, f"{line:g}%")
