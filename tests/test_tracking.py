"""Issue 5 end to end: redirects count clicks, and people read them as stats and exports."""

import csv
import io
import re
from datetime import timedelta

import pytest
import segno

from app.models import utcnow
from tests.click_factories import (
    CHROME_ON_WINDOWS,
    SLACKBOT,
    clicks_of,
    shown_click_count,
    visit,
)
from tests.conftest import run_at_once
from tests.link_helpers import HX, create_link, link_row, mutate, shipped, update_row

IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)


@pytest.fixture
def sale(org_team, acme):
    """A link /sale in acme, created by the member, pointing at https://shop.example/sale."""
    return create_link(org_team["member"], acme, "sale", "https://shop.example/sale")


def test_redirect_counts_a_click_with_what_the_visit_tells(app, sale):
    response = visit(app, "sale", Referer="https://news.example.com/story?id=1")
    assert response.status_code == 302
    assert response.headers["Location"] == "https://shop.example/sale"
    assert response.headers["Cache-Control"] == "no-store"
    [click] = clicks_of(app, "sale")
    assert (click.browser, click.os, click.device_type) == ("Chrome", "Windows", "desktop")
    assert click.referrer_host == "news.example.com"
    assert click.is_bot is False
    assert click.is_internal is False
    assert click.country is None
    assert click.visitor_hash
    assert "203.0.113.7" not in click.visitor_hash
    assert link_row(app, "sale").click_count == 1


def test_head_answers_like_get_and_counts_nothing(app, sale):
    response = visit(app, "sale", method="HEAD")
    assert response.status_code == 302
    assert response.headers["Location"] == "https://shop.example/sale"
    assert clicks_of(app, "sale") == []
    assert link_row(app, "sale").click_count == 0


def test_plus_shows_a_preview_and_counts_nothing(app, sale):
    response = visit(app, "sale+")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "https://shop.example/sale" in page
    assert '<a href="https://shop.example/sale" role="button"' in page
    assert "Continue" in page
    assert clicks_of(app, "sale") == []


def test_preview_of_an_unknown_or_deactivated_link_says_so(app, org_team, acme, sale):
    assert visit(app, "nothing-here+").status_code == 404
    mutate(org_team["member"], "POST", f"/orgs/{acme}/links/sale/deactivate", acme)
    assert visit(app, "sale+").status_code == 410


def test_link_preview_bots_are_recorded_and_flagged(app, sale):
    visit(app, "sale", user_agent=SLACKBOT)
    visit(app, "sale", user_agent=IPHONE)
    bot, human = clicks_of(app, "sale")
    assert (bot.is_bot, bot.device_type) == (True, "bot")
    assert (human.is_bot, human.device_type, human.os) == (False, "mobile", "iOS")


def test_members_clicks_are_internal_and_others_are_not(app, org_team, sale):
    org_team["member"].get("/sale", headers={"User-Agent": CHROME_ON_WINDOWS})
    org_team["outsider"].get("/sale", headers={"User-Agent": CHROME_ON_WINDOWS})
    visit(app, "sale")
    member_click, outsider_click, anonymous_click = clicks_of(app, "sale")
    assert member_click.is_internal is True
    assert outsider_click.is_internal is False
    assert anonymous_click.is_internal is False


def test_country_comes_only_from_the_configured_trusted_header(app_config, app, sale):
    visit(app, "sale", **{"CF-IPCountry": "de"})
    assert clicks_of(app, "sale")[-1].country is None
    app.config["COUNTRY_HEADER"] = "CF-IPCountry"
    visit(app, "sale", **{"CF-IPCountry": "de"})
    assert clicks_of(app, "sale")[-1].country == "DE"


def test_a_link_stops_after_its_click_limit(app, org_team, acme):
    create_link(org_team["owner"], acme, "twice", "https://example.com/", max_clicks="2")
    assert [visit(app, "twice").status_code for _ in range(3)] == [302, 302, 410]
    assert "expired" in visit(app, "twice").get_data(as_text=True)
    link = link_row(app, "twice")
    assert (link.click_count, link.human_click_count) == (2, 2)


def test_concurrent_visitors_get_exactly_the_clicks_a_limit_allows(app, org_team, acme):
    create_link(org_team["owner"], acme, "only-five", "https://example.com/", max_clicks="5")

    def follow_four_times(index: int):
        ip = f"198.51.100.{index}"
        return lambda: [visit(app, "only-five", ip=ip).status_code for _ in range(4)]

    statuses = [
        s for batch in run_at_once(*(follow_four_times(i) for i in range(6))) for s in batch
    ]

    assert statuses.count(302) == 5
    assert statuses.count(410) == 19
    link = link_row(app, "only-five")
    assert (link.click_count, link.human_click_count) == (5, 5)
    assert len(clicks_of(app, "only-five")) == 5


def test_a_prefetch_is_counted_as_a_bot_not_a_person(app, sale):
    response = visit(app, "sale", **{"Sec-Purpose": "prefetch"})
    assert response.status_code == 302
    (click,) = clicks_of(app, "sale")
    assert click.is_bot is True


def test_a_link_stops_at_its_expiry_date(app, sale):
    update_row(app, "sale", expires_at=utcnow() - timedelta(minutes=1))
    response = visit(app, "sale")
    assert response.status_code == 410
    assert clicks_of(app, "sale") == []


@pytest.fixture
def unwritable_spool(app_config, tmp_path):
    """A spool directory that can not be made: its parent is a regular file."""
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    app_config["CLICK_SPOOL_DIR"] = str(blocker / "click-spool")


def test_a_click_that_can_not_be_spooled_still_redirects_and_is_logged(
    unwritable_spool, app, sale, caplog
):
    response = app.test_client().get("/sale", headers={"User-Agent": CHROME_ON_WINDOWS})
    assert response.status_code == 302
    assert response.headers["Location"] == "https://shop.example/sale"
    assert f"event=click_dropped link_id={link_row(app, 'sale').id}" in caplog.text


def test_a_limited_link_whose_click_can_not_be_spooled_still_spends_its_limit(
    unwritable_spool, app, org_team, acme, caplog
):
    create_link(org_team["owner"], acme, "once", "https://example.com/secret", max_clicks="1")
    client = app.test_client()
    first = client.get("/once", headers={"User-Agent": CHROME_ON_WINDOWS})
    assert first.status_code == 302
    assert "event=click_dropped" in caplog.text
    # Counted before the spool refused the row, so the limit stays exact.
    link = link_row(app, "once")
    assert (link.click_count, link.human_click_count) == (1, 1)
    assert client.get("/once", headers={"User-Agent": CHROME_ON_WINDOWS}).status_code == 410


def test_concurrent_redirects_are_counted_exactly(app, sale):
    threads, per_thread = 4, 25

    def follow_many(index: int):
        ip = f"198.51.100.{index}"
        return lambda: [visit(app, "sale", ip=ip).status_code for _ in range(per_thread)]

    statuses = run_at_once(*(follow_many(i) for i in range(threads)))
    assert statuses == [[302] * per_thread] * threads
    assert link_row(app, "sale").click_count == threads * per_thread
    assert len(clicks_of(app, "sale")) == threads * per_thread


def test_a_changed_destination_keeps_the_earlier_clicks(app, org_team, acme, sale):
    visit(app, "sale")
    response = mutate(
        org_team["member"],
        "POST",
        f"/orgs/{acme}/links/sale",
        acme,
        data={"url": "https://shop.example/new-sale", "title": ""},
    )
    assert response.status_code == 200
    second = visit(app, "sale")
    assert second.headers["Location"] == "https://shop.example/new-sale"
    assert len(clicks_of(app, "sale")) == 2
    page = org_team["owner"].get(f"/orgs/{acme}/links/sale").get_data(as_text=True)
    assert '<p class="stat-value">2</p><p class="stat-label">Total clicks</p>' in page


def test_link_page_shows_stats_side_by_side_and_unique_visitors(app, org_team, acme, sale):
    visit(app, "sale", ip="203.0.113.1")
    visit(app, "sale", ip="203.0.113.1")
    visit(app, "sale", ip="203.0.113.2")
    visit(app, "sale", user_agent=SLACKBOT)
    org_team["member"].get("/sale", headers={"User-Agent": CHROME_ON_WINDOWS})
    shipped(app)
    page = org_team["owner"].get(f"/orgs/{acme}/links/sale").get_data(as_text=True)

    def stat(label):
        return f'<p class="stat-value">{{}}</p><p class="stat-label">{label}</p>'

    assert stat("Total clicks").format(5) in page
    assert stat("Unique visitors").format(2) in page
    assert stat("Bot clicks").format(1) in page
    assert stat("Internal clicks").format(1) in page
    assert "<svg" in page
    assert 'src="data:image/svg+xml' in page


def test_stats_range_tab_is_a_fragment_for_htmx(app, org_team, acme, sale):
    visit(app, "sale")
    owner = org_team["owner"]
    response = owner.get(f"/orgs/{acme}/links/sale/stats?range=24h", headers=HX)
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert body.lstrip().startswith('<section id="link-stats"')
    assert "<html" not in body
    assert 'aria-current="page">24 hours' in body
    assert "HX-Request" in response.headers["Vary"]
    # The URL htmx pushed opens the link page with that range when reloaded.
    full = owner.get(f"/orgs/{acme}/links/sale/stats?range=24h")
    assert full.status_code == 302
    assert full.headers["Location"] == f"/orgs/{acme}/links/sale?range=24h"
    page = owner.get(full.headers["Location"]).get_data(as_text=True)
    assert 'aria-current="page">24 hours' in page


def test_internal_clicks_can_be_included_in_the_chart(app, org_team, acme, sale):
    org_team["member"].get("/sale", headers={"User-Agent": CHROME_ON_WINDOWS})
    shipped(app)
    owner = org_team["owner"]
    without = owner.get(f"/orgs/{acme}/links/sale/stats?range=7d", headers=HX)
    assert "count 0 human clicks" in without.get_data(as_text=True)
    with_internal = owner.get(f"/orgs/{acme}/links/sale/stats?range=7d&internal=1", headers=HX)
    assert "count 1 human click," in with_internal.get_data(as_text=True)


def test_dashboard_rows_poll_their_click_count(app, org_team, acme, sale):
    owner = org_team["owner"]
    page = owner.get(f"/orgs/{acme}/links").get_data(as_text=True)
    assert f'hx-get="/orgs/{acme}/links/sale/clicks"' in page
    assert 'hx-trigger="every 10s"' in page
    visit(app, "sale")
    visit(app, "sale")
    visit(app, "sale", user_agent=SLACKBOT)
    response = owner.get(f"/orgs/{acme}/links/sale/clicks", headers=HX)
    assert shown_click_count(response.get_data(as_text=True)) == (
        "2",
        "2 clicks by people; 3 in all, including 1 by bots and your team",
    )
    assert response.headers["Cache-Control"] == "no-store"


def test_qr_code_downloads_as_svg_of_the_short_url(org_team, acme, sale):
    response = org_team["member"].get(f"/orgs/{acme}/links/sale/qr.svg")
    assert response.status_code == 200
    assert response.mimetype == "image/svg+xml"
    assert "attachment" in response.headers["Content-Disposition"]
    assert response.headers["Content-Security-Policy"].startswith("default-src 'none'")
    body = response.get_data(as_text=True)
    assert "<svg" in body
    assert "<script" not in body
    # Read the code back: it is the short URL's, not the destination's.
    assert dark_modules(body) == expected_modules("https://go.acme.test/sale")
    assert dark_modules(body) != expected_modules("https://shop.example/sale")


def dark_modules(svg: str) -> set[tuple[int, int]]:
    """The dark squares an SVG QR code draws, as (row, column), its 4-module border removed.

    segno draws each row as runs: `M x y` or `m dx dy` moves, `h n` draws n squares.
    """
    path = re.search(r'class="qrline"[^>]*\sd="([^"]+)"', svg).group(1)
    x = y = 0.0
    dark = set()
    for command, arguments in re.findall(r"([Mmh])([-\d. ]+)", path):
        numbers = [float(n) for n in arguments.split()]
        if command == "M":
            x, y = numbers
        elif command == "m":
            x, y = x + numbers[0], y + numbers[1]
        else:
            dark |= {(int(y - 0.5) - 4, int(x) + n - 4) for n in range(int(numbers[0]))}
            x += numbers[0]
    return dark


def expected_modules(url: str) -> set[tuple[int, int]]:
    """The dark squares of the QR code segno makes for `url` (the app's settings)."""
    matrix = segno.make(url, error="m", micro=False).matrix
    return {(row, col) for row, line in enumerate(matrix) for col, on in enumerate(line) if on}


def read_csv(response) -> list[dict]:
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))


def test_clicks_csv_has_one_row_per_click_and_no_ip(app, org_team, acme, sale):
    visit(app, "sale", ip="203.0.113.99", Referer="https://mail.example/")
    visit(app, "sale", user_agent=SLACKBOT)
    response = org_team["member"].get(f"/orgs/{acme}/links/sale/clicks.csv")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = read_csv(response)
    assert len(rows) == 2
    assert {
        "clicked_at",
        "referrer_host",
        "browser",
        "os",
        "device",
        "is_bot",
        "is_internal",
    } <= set(rows[0])
    assert rows[0]["referrer_host"] == "mail.example"
    assert [row["is_bot"] for row in rows] == ["false", "true"]
    assert "203.0.113.99" not in response.get_data(as_text=True)


def test_dashboard_offers_the_links_export(org_team, acme):
    page = org_team["member"].get(f"/orgs/{acme}/links").get_data(as_text=True)
    assert f'href="/orgs/{acme}/links.csv" download' in page


def test_links_csv_escapes_formulas(app, org_team, acme):
    create_link(
        org_team["owner"], acme, "evil", "https://example.com/", title='=HYPERLINK("http://x","y")'
    )
    rows = read_csv(org_team["owner"].get(f"/orgs/{acme}/links.csv"))
    assert [row["slug"] for row in rows] == ["evil"]
    assert rows[0]["title"] == '\'=HYPERLINK("http://x","y")'
    assert rows[0]["short_url"] == "https://go.acme.test/evil"


@pytest.mark.parametrize(
    "path",
    [
        "/orgs/{org}/links/sale/stats",
        "/orgs/{org}/links/sale/clicks",
        "/orgs/{org}/links/sale/qr.svg",
        "/orgs/{org}/links/sale/clicks.csv",
        "/orgs/{org}/links.csv",
    ],
)
def test_outsiders_get_404_on_stats_and_exports(org_team, acme, sale, path):
    response = org_team["outsider"].get(path.format(org=acme))
    assert response.status_code == 404
    assert "shop.example" not in response.get_data(as_text=True)
