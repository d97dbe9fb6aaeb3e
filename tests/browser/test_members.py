"""In Chromium: an owner invites someone, who accepts; the owner promotes them, and they
remove a third member inline."""

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import create_org_as
from tests.org_helpers import role_of

pytestmark = pytest.mark.browser


def sign_in_on_provider_page(page: Page, sub: str) -> None:
    """Type the subject on the provider's own page and authorise."""
    page.locator('input[type="text"][name="sub"]').fill(sub)
    page.get_by_role("button", name="Authorize", exact=True).click()


def member_row(page: Page, email: str):
    return page.locator("tr[id^='member-']", has_text=email)


def test_invite_accept_promote_and_remove(
    page: Page, second_person, live_server, idp, signed_in_client, grant_role, app
):
    # The owner's org, with a third person already in it.
    owner = signed_in_client("olga", email="olga@example.com", name="Olga Owner")
    slug = create_org_as(owner, "Acme")
    signed_in_client("carol", email="carol@example.com", name="Carol Member")
    grant_role(slug, "carol", "member")

    idp.set_user("olga", email="olga@example.com", email_verified=True, name="Olga Owner")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server)
    page.goto(f"{live_server}/login?next=/orgs/{slug}/members")
    sign_in_on_provider_page(page, "olga")
    expect(page.get_by_role("heading", level=1)).to_have_text("Members of Acme")

    page.get_by_label("Email").fill("bruno@example.com")
    page.get_by_role("button", name="Create invitation").click()
    link_box = page.get_by_test_id("invite-link")
    expect(link_box).to_be_visible()
    invite_link = link_box.input_value()
    assert invite_link.startswith(f"{live_server}/invitations/")
    # The link is shown once: the Copy button next to it puts it on the clipboard.
    link_area = page.get_by_test_id("invite-link-box")
    link_area.get_by_role("button", name="Copy").click()
    expect(link_area.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == invite_link
    expect(page.locator("#invitations")).to_contain_text("bruno@example.com")

    # The invitee, in a browser of their own, signs in through the provider and accepts.
    idp.set_user("bruno", email="bruno@example.com", email_verified=True, name="Bruno New")
    invitee = second_person()
    invitee.goto(invite_link)
    sign_in_on_provider_page(invitee, "bruno")
    expect(invitee.get_by_role("heading", level=1)).to_have_text("Join Acme")
    invitee.get_by_role("button", name="Accept invitation").click()
    expect(invitee).to_have_url(f"{live_server}/orgs/{slug}/links")
    expect(invitee.get_by_text("Welcome to Acme.")).to_be_visible()

    # The owner promotes them to admin in their row, without leaving the page.
    page.reload()
    page.evaluate("window.stillTheSamePage = true")
    bruno_row = member_row(page, "bruno@example.com")
    bruno_row.get_by_role("combobox").select_option("admin")
    bruno_row.get_by_role("button", name="Change role").click()
    # The select showed "admin" before the click too: the row the server sends back says
    # the change was saved, and only then is a reload meaningful.
    expect(member_row(page, "bruno@example.com").get_by_role("status")).to_have_text(
        "Bruno New is now admin."
    )
    expect(member_row(page, "bruno@example.com").get_by_role("combobox")).to_have_value("admin")
    expect(
        member_row(page, "bruno@example.com").get_by_role("button", name="Remove")
    ).to_be_visible()
    assert page.evaluate("window.stillTheSamePage") is True
    page.reload()
    expect(member_row(page, "bruno@example.com").get_by_role("status")).to_have_count(0)
    expect(member_row(page, "bruno@example.com").get_by_role("combobox")).to_have_value("admin")
    assert role_of(app, slug, "bruno") == "admin"

    # The new admin removes Carol; her row disappears without a reload.
    invitee.goto(f"{live_server}/orgs/{slug}/members")
    invitee.evaluate("window.stillTheSamePage = true")
    invitee.on("dialog", lambda dialog: dialog.accept())
    member_row(invitee, "carol@example.com").get_by_role("button", name="Remove").click()
    expect(member_row(invitee, "carol@example.com")).to_have_count(0)
    assert invitee.evaluate("window.stillTheSamePage") is True
    invitee.reload()
    expect(member_row(invitee, "carol@example.com")).to_have_count(0)
    expect(member_row(invitee, "olga@example.com")).to_have_count(1)
    assert role_of(app, slug, "carol") is None
