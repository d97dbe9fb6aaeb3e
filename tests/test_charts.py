"""The clicks chart: bar geometry, round axis maxima, sparse date labels, and its SVG."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from flask import render_template

from app.services.analytics import Bucket
from app.services.charts import MARGIN_LEFT, bar_chart, nice_step

START = datetime(2026, 11, 23, 0, tzinfo=UTC)


def hourly_buckets(counts):
    return [Bucket(start=START + timedelta(hours=i), count=c) for i, c in enumerate(counts)]


def daily_buckets(counts):
    return [Bucket(start=START + timedelta(days=i), count=c) for i, c in enumerate(counts)]


@pytest.mark.parametrize(
    ("highest", "step"), [(0, 1), (1, 1), (3, 1), (7, 2), (37, 10), (100, 50), (1234, 500)]
)
def test_axis_steps_are_round_numbers(highest, step):
    assert nice_step(highest) == step


def test_the_tallest_bar_fills_the_plot_up_to_a_round_maximum():
    chart = bar_chart(hourly_buckets([0, 37, 10]), hourly=True, width=340, height=232)
    assert chart.axis_max == 40
    assert [tick.text for tick in chart.y_ticks] == ["0", "10", "20", "30", "40"]
    plot_height = chart.plot_bottom - chart.plot_top
    tallest = chart.bars[1]
    assert tallest.height == pytest.approx(plot_height * 37 / 40, abs=0.01)
    assert tallest.y + tallest.height == pytest.approx(chart.plot_bottom, abs=0.01)
    assert chart.bars[0].height == 0


def test_bars_sit_side_by_side_inside_the_plot():
    chart = bar_chart(daily_buckets([1] * 30), hourly=False)
    assert len(chart.bars) == 30
    assert chart.bars[0].x >= MARGIN_LEFT
    assert chart.bars[-1].x + chart.bars[-1].width <= chart.plot_right + 0.01
    lefts = [bar.x for bar in chart.bars]
    assert lefts == sorted(lefts)
    assert all(b.x + b.width < n.x for b, n in zip(chart.bars, chart.bars[1:], strict=False))


def test_an_empty_series_still_has_an_axis():
    chart = bar_chart(daily_buckets([0] * 7), hourly=False)
    assert chart.axis_max == 1
    assert chart.total == 0
    assert all(bar.height == 0 for bar in chart.bars)


def test_dates_label_every_few_bars_ending_with_the_latest():
    chart = bar_chart(daily_buckets([0] * 90), hourly=False)
    assert 2 <= len(chart.x_labels) <= 8
    assert chart.x_labels[-1].text == (START + timedelta(days=89)).strftime("%b %d")


def test_hourly_labels_show_the_hour():
    chart = bar_chart(hourly_buckets([0] * 24), hourly=True)
    assert chart.x_labels[-1].text == "23:00"
    assert chart.bars[14].label == "2026-11-23 14:00"


def test_daily_bars_are_labelled_with_the_date():
    chart = bar_chart(daily_buckets([2]), hourly=False)
    assert chart.bars[0].label == "2026-11-23"


def test_the_chart_renders_as_accessible_svg_without_inline_styles(app):
    chart = bar_chart(hourly_buckets([0] * 14 + [3] + [0] * 8 + [1]), hourly=True)
    with app.test_request_context():
        html = render_template("links/partials/chart.html", chart=chart)
    assert html.count("<rect ") == 24
    assert 'role="img"' in html
    assert re.search(r'aria-label="4 clicks charted, one bar per hour from 2026-11-23 00:00', html)
    assert "<title>2026-11-23 14:00: 3 clicks</title>" in html
    assert "<title>2026-11-23 23:00: 1 click</title>" in html
    assert "style=" not in html
    assert "<script" not in html
