"""In Chromium: the dashboard's click count shows clicks by people and keeps its tooltip,
with every recorded click, up to date as it polls."""

import pytest
from playwright.sync_api import Page, expect

from tests.browser.test_links import create_org, shorten, sign_in
from tests.click_factories import CHROME_ON_WINDOWS

pytestmark = pytest.mark.browser


def test_the_polled_count_shows_people_and_the_tooltip_the_total(
    page: Page, live_server, idp, playwright
):
    sign_in(page, live_server, idp, "ada", "Ada Lovelace")
    create_org(page, "Analytical Engines")
    shorten(page, "https://example.com/notes", slug="notes", title="Notes")
    count = page.locator("#link-notes td.clicks .click-count")
    expect(count).to_have_attribute("title", "0 clicks by people; 0 in all")
    page.evaluate("window.stillTheSamePage = true")

    # Ada follows her own link (her cookies: a team click), then a stranger does.
    headers = {"User-Agent": CHROME_ON_WINDOWS}
    assert page.request.get(f"{live_server}/notes", max_redirects=0, headers=headers).status == 302
    stranger = playwright.request.new_context()
    try:
        response = stranger.get(f"{live_server}/notes", max_redirects=0, headers=headers)
        assert response.status == 302
    finally:
        stranger.dispose()

    expect(count).to_have_attribute(
        "title", "1 click by a person; 2 in all, including 1 by bots and your team", timeout=15_000
    )
    expect(count).to_have_text("1 click by a person; 2 in all, including 1 by bots and your team")
    assert page.evaluate("window.stillTheSamePage") is True
