"""In Chromium: create, copy, search, edit, deactivate, reactivate and delete a link with htmx,
and what a member may not do."""

import re

import pytest
from playwright.sync_api import Locator, Page, expect

from app.models import utcnow
from tests.conftest import create_org_as
from tests.link_helpers import update_row

pytestmark = pytest.mark.browser

SHORT = "https://go.acme.test"


def sign_in(page: Page, live_server: str, idp, sub: str, name: str) -> None:
    """Sign in through the provider's own page, as a person would."""
    idp.set_user(sub, email=f"{sub}@example.com", email_verified=True, name=name)
    page.goto(live_server)
    page.get_by_role("button", name="Sign in").first.click()
    page.locator('input[type="text"][name="sub"]').fill(sub)
    page.get_by_role("button", name="Authorize", exact=True).click()
    expect(page.get_by_test_id("signed-in-as")).to_have_text(name)


def create_org(page: Page, name: str) -> None:
    page.get_by_label("Name").fill(name)
    page.get_by_role("button", name="Create organisation").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(name)


def shorten(page: Page, url: str, slug: str = "", title: str = "") -> None:
    page.get_by_label("Destination").fill(url)
    page.get_by_label("Custom short link").fill(slug)
    page.get_by_label("Title").fill(title)
    page.get_by_role("button", name="Shorten").click()


def shorten_and_see(page: Page, url: str, slug: str) -> Locator:
    """Create a link and wait for its row: the form resets when the create comes back, so
    the next one may be typed only then."""
    shorten(page, url, slug=slug)
    row = page.locator(f"#link-{slug}")
    expect(row).to_be_visible()
    return row


def status_of(page: Page, path: str) -> int:
    """What the public redirect answers, asked with this browser's own request context."""
    return page.request.get(path, max_redirects=0).status


def test_link_lifecycle_without_page_reloads(page: Page, live_server, idp):
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server)
    sign_in(page, live_server, idp, "grace", "Grace Hopper")
    create_org(page, "Hopper Labs")
    expect(page.get_by_text("No short links yet")).to_be_visible()
    # A marker that a full page load would wipe: everything below must happen in place.
    page.evaluate("window.stillTheSamePage = true")

    # A refused destination comes back under its field, and the next refusal replaces it.
    shorten(page, f"{SHORT}/loop")
    expect(page.locator("#url-error")).to_contain_text("one of our own short links")
    shorten(page, "https://example.com/ok", slug="login")
    expect(page.locator("#slug-error")).to_contain_text("reserved")
    expect(page.locator("#url-error")).to_have_count(0)

    shorten(page, "https://example.com/spring", slug="Spring-Launch", title="Spring launch")
    row = page.locator("#link-spring-launch")
    expect(row).to_contain_text("Spring launch")
    expect(row).to_contain_text("Active")
    expect(page.get_by_text("No short links yet")).to_be_hidden()
    expect(page.get_by_label("Destination")).to_have_value("")

    # Copy straight from the creation notice, then from the row htmx inserted.
    notice = page.locator(".created-notice")
    notice.get_by_role("button", name="Copy").click()
    expect(notice.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == f"{SHORT}/spring-launch"
    page.evaluate("navigator.clipboard.writeText('')")
    row.get_by_role("button", name="Copy").click()
    expect(row.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == f"{SHORT}/spring-launch"

    # Live search narrows the table and puts the query in the address bar.
    shorten_and_see(page, "https://example.com/other", "other-thing")
    page.get_by_label("Search links").fill("spring")
    expect(page.locator("#link-other-thing")).to_be_hidden()
    expect(row).to_be_visible()
    expect(page).to_have_url(re.compile(r"[?&]q=spring"))
    page.get_by_label("Search links").fill("")
    expect(page.locator("#link-other-thing")).to_be_visible()

    # Edit inline; the redirect follows at once.
    row.get_by_role("button", name="Edit").click()
    page.locator("#edit-url-spring-launch").fill("https://example.org/summer")
    page.get_by_role("button", name="Save").click()
    expect(row).to_contain_text("example.org")
    response = page.request.get(f"{live_server}/spring-launch", max_redirects=0)
    assert response.status == 302
    assert response.headers["location"] == "https://example.org/summer"

    # Deactivate: the row says so and the redirect is gone; reactivate brings it back.
    row.get_by_role("button", name="Deactivate").click()
    expect(row).to_contain_text("Inactive")
    assert status_of(page, f"{live_server}/spring-launch") == 410
    row.get_by_role("button", name="Reactivate").click()
    expect(row.locator(".badge")).to_have_text("Active")
    assert status_of(page, f"{live_server}/spring-launch") == 302

    # Delete (Grace owns the org) after confirming.
    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Delete").click()
    expect(row).to_have_count(0)
    assert status_of(page, f"{live_server}/spring-launch") == 410

    assert page.evaluate("window.stillTheSamePage") is True


def test_member_sees_no_delete_button_and_a_forged_delete_is_refused(
    page: Page, second_person, live_server, idp, grant_role
):
    sign_in(page, live_server, idp, "olga", "Olga Owner")
    create_org(page, "Olga Co")
    shorten_and_see(page, "https://example.com/keep", "keep-me")

    member = second_person()
    sign_in(member, live_server, idp, "milo", "Milo Member")
    grant_role("olga-co", "milo", "member")
    member.goto(f"{live_server}/orgs/olga-co/links")
    row = member.locator("#link-keep-me")
    expect(row).to_be_visible()
    expect(row.get_by_role("button", name="Delete")).to_have_count(0)
    expect(row.get_by_role("button", name="Deactivate")).to_have_count(0)

    token = member.locator('meta[name="csrf-token"]').get_attribute("content")
    forged = member.request.delete(
        f"{live_server}/orgs/olga-co/links/keep-me",
        headers={"X-CSRFToken": token, "HX-Request": "true"},
    )
    assert forged.status == 403
    assert status_of(page, f"{live_server}/keep-me") == 302


def test_a_refused_row_action_shows_an_alert_and_leaves_the_table_whole(
    page: Page, live_server, idp, app
):
    sign_in(page, live_server, idp, "gus", "Gus Owner")
    create_org(page, "Gus Co")
    shorten_and_see(page, "https://example.com/a", "first-one")
    shorten_and_see(page, "https://example.com/b", "second-one")

    # Someone else deletes the first link while this page is open.
    update_row(app, "first-one", deleted_at=utcnow())
    page.locator("#link-first-one").get_by_role("button", name="Deactivate").click()

    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("No such link in this organisation.")
    expect(page.locator("#links table thead")).to_have_count(1)
    expect(page.locator("main main, #links nav.org-nav")).to_have_count(0)
    expect(page.locator("#link-second-one")).to_be_visible()

    # The next action that works clears the alert.
    page.locator("#link-second-one").get_by_role("button", name="Deactivate").click()
    expect(page.locator("#link-second-one")).to_contain_text("Inactive")
    expect(alert).to_have_count(0)


def test_an_admin_deletes_a_members_link_after_confirming(
    page: Page, second_person, live_server, idp, grant_role, signed_in_client
):
    owner = signed_in_client("oscar", name="Oscar Owner")
    org = create_org_as(owner, "Oscar Co")
    signed_in_client("mia", name="Mia Member")
    grant_role(org, "mia", "member")
    member = second_person()
    sign_in(member, live_server, idp, "mia", "Mia Member")
    member.goto(f"{live_server}/orgs/{org}/links")
    shorten_and_see(member, "https://example.com/old-offer", "old-offer")

    sign_in(page, live_server, idp, "ada", "Ada Admin")
    grant_role(org, "ada", "admin")
    page.goto(f"{live_server}/orgs/{org}/links")
    row = page.locator("#link-old-offer")
    # Dismissing the confirmation keeps the link.
    page.once("dialog", lambda dialog: dialog.dismiss())
    row.get_by_role("button", name="Delete").click()
    expect(row).to_be_visible()
    assert status_of(page, f"{live_server}/old-offer") == 302

    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Delete").click()
    expect(row).to_have_count(0)
    assert status_of(page, f"{live_server}/old-offer") == 410


def test_a_search_survives_a_reload_and_back_undoes_it(page: Page, live_server, idp):
    sign_in(page, live_server, idp, "sue", "Sue Searcher")
    create_org(page, "Sue Co")
    shorten_and_see(page, "https://example.com/spring", "spring-sale")
    shorten_and_see(page, "https://example.com/autumn", "autumn-sale")

    page.get_by_label("Search links").fill("spring")
    expect(page.locator("#link-autumn-sale")).to_be_hidden()
    expect(page).to_have_url(re.compile(r"[?&]q=spring"))

    page.reload()
    expect(page.get_by_label("Search links")).to_have_value("spring")
    expect(page.locator("#link-spring-sale")).to_be_visible()
    expect(page.locator("#link-autumn-sale")).to_have_count(0)

    page.go_back()
    expect(page).to_have_url(re.compile(r"/orgs/sue-co/links$"))
    expect(page.locator("#link-autumn-sale")).to_be_visible()
