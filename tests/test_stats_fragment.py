"""The stats fragment and the QR partial: range tabs, totals, top lists, escaped labels."""

import re
from datetime import UTC, datetime

import pytest
from flask import render_template

from app.extensions import db
from app.services.analytics import RANGES, link_stats
from app.services.charts import bar_chart
from app.services.qr import qr_data_uri
from tests.click_factories import add_click, make_link

NOW = datetime(2026, 11, 23, 14, 30, tzinfo=UTC)
STATS_URL = "/orgs/org-abc/links/abc/stats"


def render_stats(app, link_id, range_key="7d", include_internal=False) -> str:
    with app.app_context():
        stats = link_stats(link_id, range_key, include_internal=include_internal, now=NOW)
        chart = bar_chart(stats.series, hourly=stats.hourly)
        with app.test_request_context():
            return render_template(
                "links/partials/stats.html", stats=stats, chart=chart, stats_url=STATS_URL
            )


def total(html: str, label: str) -> str:
    match = re.search(rf'<p class="stat-value">(\d+)</p><p class="stat-label">{label}</p>', html)
    assert match, f"no {label} in the fragment"
    return match.group(1)


def toggle(html: str) -> tuple[str, str]:
    """The internal-clicks toggle's query string and text."""
    match = re.search(rf'hx-get="{STATS_URL}\?([^"]*)"[^>]*>(\w[^<]*internal clicks)</a>', html)
    assert match, "no internal-clicks toggle in the fragment"
    return match.group(1), match.group(2)


@pytest.fixture
def link_id(app):
    with app.app_context():
        link = make_link()
        add_click(link, NOW, visitor_hash="1" * 64, referrer_host="mail.example")
        add_click(link, NOW, visitor_hash="2" * 64, country="DE")
        add_click(link, NOW, is_bot=True, device_type="bot", browser="curl")
        add_click(link, NOW, is_internal=True, visitor_hash="3" * 64)
        db.session.commit()
        return link.id


def test_the_four_totals_sit_side_by_side(app, link_id):
    html = render_stats(app, link_id)
    assert total(html, "Total clicks") == "4"
    assert total(html, "Unique visitors") == "2"
    assert total(html, "Bot clicks") == "1"
    assert total(html, "Internal clicks") == "1"
    assert 'id="link-stats"' in html


def test_range_tabs_load_the_fragment_and_mark_the_current_range(app, link_id):
    html = render_stats(app, link_id, "30d")
    for range_key in RANGES:
        href = f"{STATS_URL}?range={range_key}"
        assert f'hx-get="{href}"' in html
        assert f'href="{href}"' in html
    assert html.count('aria-current="page"') == 1
    assert re.search(r'range=30d" hx-target="#link-stats"[^>]*aria-current="page"', html)
    assert html.count('hx-push-url="true"') == len(RANGES) + 1


def test_the_internal_toggle_adds_internal_1_and_tabs_keep_it(app, link_id):
    leaving_out = render_stats(app, link_id)
    assert toggle(leaving_out) == ("range=7d&amp;internal=1", "Include internal clicks")
    including = render_stats(app, link_id, include_internal=True)
    assert toggle(including) == ("range=7d", "Leave out internal clicks")
    assert f'hx-get="{STATS_URL}?range=24h&amp;internal=1"' in including


def test_top_lists_name_unknown_values(app, link_id):
    html = render_stats(app, link_id)
    assert "<td>mail.example</td><td>1</td>" in html
    assert "<td>Direct or unknown</td><td>1</td>" in html
    assert "<td>DE</td><td>1</td>" in html
    assert "curl" not in html


def test_labels_from_visitors_are_escaped(app):
    with app.app_context():
        link = make_link()
        add_click(link, NOW, referrer_host="<script>alert(1)</script>", browser='"><img src=x>')
        db.session.commit()
        link_id = link.id
    html = render_stats(app, link_id)
    assert "<script>alert(1)" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<img src=x>" not in html
    assert "&#34;&gt;&lt;img src=x&gt;" in html


def test_the_stats_url_is_escaped_in_attributes(app, link_id):
    with app.app_context():
        stats = link_stats(link_id, "7d", include_internal=False, now=NOW)
        with app.test_request_context():
            html = render_template(
                "links/partials/stats.html",
                stats=stats,
                chart=bar_chart(stats.series, hourly=False),
                stats_url='/x" onclick="alert(1)',
            )
    assert 'onclick="alert(1)' not in html


def test_the_fragment_has_no_inline_styles_or_scripts(app, link_id):
    html = render_stats(app, link_id, "24h")
    assert "style=" not in html
    assert "<script" not in html
    assert html.count("<rect ") == 24


def test_the_qr_partial_shows_the_code_and_offers_a_download(app):
    short_url = "https://go.acme.test/abc"
    with app.test_request_context():
        html = render_template(
            "links/partials/qr.html",
            short_url=short_url,
            qr_data_uri=qr_data_uri(short_url),
            qr_download_url="/orgs/acme/links/abc/qr.svg",
        )
    assert '<img src="data:image/svg+xml' in html
    assert f'alt="QR code for {short_url}"' in html
    assert '<a href="/orgs/acme/links/abc/qr.svg" download>' in html
