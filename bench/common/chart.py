"""The bench chart: horizontal bars with a spread whisker and a target line.

Drawn with matplotlib, a bench-only dependency (pyproject's ``bench`` extra,
``pip install -e '.[bench]'``), imported only where the figure is drawn, so
the benchmarks, their tables and results.json work without it. The PNG is
the same bytes for the same panels and matplotlib version: a fixed width
and DPI, the height from the number of bars, matplotlib's default style
whatever a local matplotlibrc says, and no ``Software`` text chunk.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

RGB = tuple[int, int, int]

BLACK: RGB = (20, 20, 20)
GREY: RGB = (150, 150, 150)
RED: RGB = (200, 40, 40)
PALETTE: tuple[RGB, ...] = (
    (70, 110, 180),
    (230, 140, 40),
    (80, 160, 90),
    (170, 80, 160),
    (120, 120, 120),
)

# Sizes in inches at DPI dots per inch: 1000 pixels wide, as the old chart.
DPI = 100
WIDTH_IN = 10.0
TITLE_IN = 0.45  # the chart's title line
HEAD_IN = 0.35  # a panel's title line
BAR_IN = 0.30  # one bar with its gap
FOOT_IN = 0.40  # below a panel's bars: the target's label, then the gap to the next panel
MARGIN_IN = 0.15
# The bars' axes in fractions of the width: labels on the left, values on the right.
BARS_LEFT, BARS_RIGHT = 0.33, 0.79
TEXT_X = 0.016  # titles start here
FONT_PT = 9
LABEL_CHARS = 44  # longer bar labels are cut: they would run into the bars


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    lo: float | None = None  # spread whisker, e.g. the 25th percentile
    hi: float | None = None
    color: RGB | None = None
    note: str = ""  # printed after the value


@dataclass(frozen=True)
class Panel:
    title: str
    bars: Sequence[Bar]
    unit: str = "ms"
    target: float | None = None  # a dashed vertical line, e.g. 3x the reference
    target_label: str = ""
    digits: int = 0


def _rgb(color: RGB) -> tuple[float, float, float]:
    return (color[0] / 255, color[1] / 255, color[2] / 255)


def _scale_max(panel: Panel) -> float:
    """The right end of the value axis: the largest value, spread or target, plus 5 %."""
    top = [b.value for b in panel.bars] + [b.hi or 0.0 for b in panel.bars]
    if panel.target is not None:
        top.append(panel.target)
    biggest = max(top, default=0.0)
    return biggest * 1.05 if biggest > 0 and math.isfinite(biggest) else 1.0


def check(panels: Sequence[Panel]) -> None:
    """Raise ValueError for what cannot be drawn: no panels, a value that is not a number."""
    if not panels:
        raise ValueError("no panels to draw")
    for panel in panels:
        for bar in panel.bars:
            if any(v is not None and math.isnan(v) for v in (bar.value, bar.lo, bar.hi)):
                raise ValueError(f"{panel.title}: {bar.label!r} is not a number")


def panel_height(panel: Panel) -> float:
    """Inches: the title line, the bars, the space below them."""
    return HEAD_IN + len(panel.bars) * BAR_IN + FOOT_IN


def _draw_bars(ax: Axes, panel: Panel) -> None:
    """The bars top-down in panel order, values clipped at the axis' end (infinity too)."""
    vmax = _scale_max(panel)
    for i, bar in enumerate(panel.bars):
        color = _rgb(bar.color or PALETTE[i % len(PALETTE)])
        width = min(bar.value, vmax) if bar.value > 0 else 0.0
        ax.barh(i, width, height=0.75, color=color)
        end = width
        if bar.lo is not None and bar.hi is not None:
            lo, hi = min(bar.lo, vmax), min(bar.hi, vmax)
            ax.hlines(i, lo, hi, colors=[_rgb(BLACK)], linewidths=1.5)
            ax.vlines([lo, hi], i - 0.25, i + 0.25, colors=[_rgb(BLACK)], linewidths=1.5)
            end = max(end, hi)
        label = f"{bar.value:.{panel.digits}f}" + (f" {bar.note}" if bar.note else "")
        ax.text(end + vmax * 0.012, i, label, va="center", fontsize=FONT_PT, clip_on=False)
    if panel.target is not None and 0 < panel.target <= vmax:
        ax.axvline(panel.target, color=_rgb(RED), linestyle=(0, (3, 3)), linewidth=1.2, zorder=0.5)
        if panel.target_label:
            ax.text(panel.target, -0.04, " " + panel.target_label, color=_rgb(RED),
                    fontsize=FONT_PT, va="top", transform=ax.get_xaxis_transform())  # fmt: skip
    ax.set_xlim(0, vmax)
    ax.set_ylim(len(panel.bars) - 0.5, -0.5)  # the first bar on top
    ax.set_yticks(range(len(panel.bars)), [b.label[:LABEL_CHARS] for b in panel.bars])
    ax.tick_params(axis="y", length=0, labelsize=FONT_PT)
    ax.set_xticks([])
    for side in ("top", "right", "bottom"):
        ax.spines[side].set_visible(False)
    ax.spines["left"].set_color(_rgb(GREY))  # the zero axis


def figure(panels: Sequence[Panel], title: str = "") -> Figure:
    """The chart as a matplotlib Figure: the title, then the panels one below the other."""
    check(panels)
    from matplotlib.figure import Figure

    head = TITLE_IN if title else 0.0
    total = MARGIN_IN + head + sum(panel_height(p) for p in panels) + MARGIN_IN
    fig = Figure(figsize=(WIDTH_IN, total), dpi=DPI, facecolor="white")
    top = total - MARGIN_IN  # inches from the bottom
    if title:
        fig.text(TEXT_X, (top - TITLE_IN / 2) / total, title, fontsize=11, weight="bold",
                 va="center")  # fmt: skip
        top -= head
    for panel in panels:
        fig.text(TEXT_X, (top - HEAD_IN / 2) / total, f"{panel.title} ({panel.unit})",
                 fontsize=10, weight="bold", va="center")  # fmt: skip
        if panel.bars:
            bars_h = len(panel.bars) * BAR_IN
            bottom = (top - HEAD_IN - bars_h) / total
            _draw_bars(
                fig.add_axes((BARS_LEFT, bottom, BARS_RIGHT - BARS_LEFT, bars_h / total)), panel
            )
        top -= panel_height(panel)
    return fig


def render(panels: Sequence[Panel], title: str = "") -> bytes:
    """The chart as PNG bytes; ValueError for malformed panels (see ``check``)."""
    from matplotlib import style

    with style.context("default"):  # rc settings are read while drawing and saving too
        fig = figure(panels, title)
        out = io.BytesIO()
        fig.savefig(out, format="png", dpi=DPI, metadata={"Software": None})
    return out.getvalue()
