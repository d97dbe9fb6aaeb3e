"""Geometry for the server-rendered SVG bar chart of clicks over time (numbers, no markup)."""

import math
from dataclasses import dataclass

from app.services.analytics import Bucket

CHART_WIDTH = 640
CHART_HEIGHT = 200
# Room for the y-axis numbers on the left, the dates underneath, and half of the
# latest date, which is centred under the last bar.
MARGIN_LEFT = 40
MARGIN_RIGHT = 20
MARGIN_TOP = 8
MARGIN_BOTTOM = 24
BAR_GAP_RATIO = 0.2
MAX_X_LABELS = 8
MAX_Y_STEPS = 4


@dataclass(frozen=True)
class Bar:
    """One bucket's rectangle, with the text its tooltip shows."""

    x: float
    y: float
    width: float
    height: float
    count: int
    label: str


@dataclass(frozen=True)
class Tick:
    """An axis mark: the text and where it goes along the axis."""

    position: float
    text: str


@dataclass(frozen=True)
class BarChart:
    """Everything the chart template draws."""

    width: int
    height: int
    hourly: bool
    plot_left: float
    plot_right: float
    plot_top: float
    plot_bottom: float
    axis_max: int
    total: int
    bars: list[Bar]
    y_ticks: list[Tick]
    x_labels: list[Tick]


def nice_step(max_value: int, steps: int = MAX_Y_STEPS) -> int:
    """A round step (1, 2 or 5 times a power of ten) that covers max_value in about `steps`."""
    raw = max(max_value, 1) / steps
    magnitude = 10 ** math.floor(math.log10(raw)) if raw >= 1 else 1
    return next(int(m * magnitude) for m in (1, 2, 5, 10) if m * magnitude >= raw)


def bar_chart(
    buckets: list[Bucket], *, hourly: bool, width: int = CHART_WIDTH, height: int = CHART_HEIGHT
) -> BarChart:
    """Lay out one bar per bucket, a round y-axis maximum and a readable number of dates."""
    plot_left, plot_right = MARGIN_LEFT, width - MARGIN_RIGHT
    plot_top, plot_bottom = MARGIN_TOP, height - MARGIN_BOTTOM
    plot_width, plot_height = plot_right - plot_left, plot_bottom - plot_top

    highest = max((bucket.count for bucket in buckets), default=0)
    step = nice_step(highest)
    axis_max = max(math.ceil(highest / step), 1) * step

    slot = plot_width / max(len(buckets), 1)
    bar_width = slot * (1 - BAR_GAP_RATIO)
    bars = []
    for index, bucket in enumerate(buckets):
        bar_height = plot_height * bucket.count / axis_max
        bars.append(
            Bar(
                x=_round(plot_left + index * slot + (slot - bar_width) / 2),
                y=_round(plot_bottom - bar_height),
                width=_round(bar_width),
                height=_round(bar_height),
                count=bucket.count,
                label=bucket_label(bucket, hourly=hourly),
            )
        )

    y_ticks = [
        Tick(position=_round(plot_bottom - plot_height * value / axis_max), text=str(value))
        for value in range(0, axis_max + 1, step)
    ]
    every = max(math.ceil(len(buckets) / MAX_X_LABELS), 1)
    x_labels = [
        Tick(
            position=_round(plot_left + index * slot + slot / 2),
            text=bucket.start.strftime("%H:%M" if hourly else "%b %d"),
        )
        for index, bucket in enumerate(buckets)
        if (len(buckets) - 1 - index) % every == 0
    ]
    return BarChart(
        width=width,
        height=height,
        hourly=hourly,
        plot_left=plot_left,
        plot_right=plot_right,
        plot_top=plot_top,
        plot_bottom=plot_bottom,
        axis_max=axis_max,
        total=sum(bucket.count for bucket in buckets),
        bars=bars,
        y_ticks=y_ticks,
        x_labels=x_labels,
    )


def bucket_label(bucket: Bucket, *, hourly: bool) -> str:
    """The bucket's start as people read it: "2026-11-23 14:00" or "2026-11-23" (UTC)."""
    return bucket.start.strftime("%Y-%m-%d %H:%M" if hourly else "%Y-%m-%d")


def _round(value: float) -> float:
    """A coordinate rounded for the SVG."""
    # Two decimals are finer than a pixel and keep the SVG short.
    return round(value, 2)
