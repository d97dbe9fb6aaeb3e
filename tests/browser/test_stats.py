"""In Chromium: clicks show up on the dashboard without a reload, and the stats page's range
tabs swap in place."""

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.test_links import create_org, shorten, sign_in
from tests.click_factories import CHROME_ON_WINDOWS

pytestmark = pytest.mark.browser


def test_clicks_appear_on_the_dashboard_and_the_stats_page(page: Page, live_server, idp):
    sign_in(page, live_server, idp, "ada", "Ada Lovelace")
    create_org(page, "Analytical Engines")
    shorten(page, "https://example.com/notes", slug="notes", title="Notes")
    row = page.locator("#link-notes")
    expect(row.locator("td.clicks .click-count")).to_have_attribute(
        "title", "0 clicks by people; 0 in all"
    )
    page.evaluate("window.stillTheSamePage = true")

    # Two visitors elsewhere follow the link; the open dashboard catches up by polling.
    for _ in range(2):
        response = page.request.get(
            f"{live_server}/notes", max_redirects=0, headers={"User-Agent": CHROME_ON_WINDOWS}
        )
        assert response.status == 302
    # Ada is signed in, so her own visits are the team's: counted, but not as people's.
    expect(row.locator("td.clicks .click-count")).to_have_attribute(
        "title", "0 clicks by people; 2 in all, including 2 by bots and your team", timeout=15_000
    )
    assert page.evaluate("window.stillTheSamePage") is True

    row.get_by_role("link", name="go.acme.test/notes").click()
    stats = page.locator("#link-stats")
    # Ada's own clicks (she is signed in) count as internal.
    expect(stats.locator(".stat-value").nth(0)).to_have_text("2")
    expect(stats.locator(".stat-value").nth(3)).to_have_text("2")
    expect(page.locator(".link-qr img")).to_be_visible()

    page.evaluate("window.stillTheSamePage = true")
    stats.get_by_role("link", name="24 hours").click()
    expect(page).to_have_url(re.compile(r"/links/notes/stats\?range=24h$"))
    expect(stats.get_by_role("link", name="24 hours")).to_have_attribute("aria-current", "page")
    expect(stats.locator("svg")).to_be_visible()
    assert page.evaluate("window.stillTheSamePage") is True

    expect(stats).to_contain_text("count 0 human clicks, leaving out your team")
    stats.get_by_role("link", name="Include internal clicks").click()
    expect(stats).to_contain_text("count 2 human clicks, including your team")
