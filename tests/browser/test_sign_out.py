"""In Chromium: signing out goes through the provider's end-session page and back home, and
a copy of the old cookie no longer signs anyone in."""

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.test_links import sign_in

pytestmark = pytest.mark.browser


@pytest.mark.parametrize(
    ("button", "message"),
    [
        ("Sign out", "You are signed out."),
        ("Sign out everywhere", "You are signed out on every browser."),
    ],
)
def test_signing_out_ends_the_session_here_and_at_the_provider(
    page: Page, browser: Browser, live_server, idp, button, message
):
    sign_in(page, live_server, idp, "grace", "Grace Hopper")
    stolen = page.context.cookies()

    page.get_by_role("button", name=button, exact=True).click()
    # The provider's page: the browser is there with our id_token_hint, ending its session.
    page.get_by_role("button", name="End session").click()

    expect(page).to_have_url(f"{live_server}/")
    expect(page.get_by_text(message)).to_be_visible()
    expect(page.get_by_role("button", name="Sign in").first).to_be_visible()
    # Someone who copied the cookie before sign-out is sent to sign in.
    copy = browser.new_context()
    try:
        copy.add_cookies(stolen)
        replayed = copy.new_page()
        replayed.goto(f"{live_server}/orgs")
        # Sent on to sign in: the provider's own page asks who is there.
        expect(replayed.get_by_role("button", name="Authorize", exact=True)).to_be_visible()
    finally:
        copy.close()
