"""In Chromium: sign in through the provider's page and create an organisation."""

import pytest
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.browser


def test_person_signs_in_and_creates_an_org(page: Page, live_server, idp):
    idp.set_user("grace", email="grace@example.com", email_verified=True, name="Grace Hopper")

    page.goto(live_server)
    page.get_by_role("button", name="Sign in").first.click()

    # The provider's own page: type the subject and authorise.
    page.locator('input[type="text"][name="sub"]').fill("grace")
    page.get_by_role("button", name="Authorize", exact=True).click()

    expect(page.get_by_test_id("signed-in-as")).to_have_text("Grace Hopper")
    expect(page).to_have_url(f"{live_server}/orgs")

    page.get_by_label("Name").fill("   ")
    page.get_by_role("button", name="Create organisation").click()
    expect(page.locator("#name-error")).to_have_text("Give the organisation a name.")

    page.get_by_label("Name").fill("Hopper Labs")
    page.get_by_role("button", name="Create organisation").click()
    expect(page).to_have_url(f"{live_server}/orgs/hopper-labs/links")
    expect(page.get_by_role("heading", level=1)).to_have_text("Hopper Labs")
    expect(page.get_by_text("No short links yet")).to_be_visible()
