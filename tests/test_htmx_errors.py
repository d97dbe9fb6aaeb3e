"""Errors answered to htmx requests: a short alert in the page's alert region, never a whole
page swapped into the element that asked, and nothing changed."""

import pytest

from tests.conftest import csrf_token
from tests.link_helpers import HX, create_link, link_row, mutate, update_row
from tests.org_helpers import pending_invitation, post_form, snapshot

ALERT_HEADERS = {"HX-Retarget": "#alerts", "HX-Reswap": "innerHTML"}


def assert_alert(response, status: int, message: str) -> None:
    """The response is an htmx alert with this status and message, and not a page."""
    body = response.get_data(as_text=True)
    assert response.status_code == status
    assert {key: response.headers.get(key) for key in ALERT_HEADERS} == ALERT_HEADERS
    assert 'role="alert"' in body
    assert message in body
    assert "<html" not in body
    assert "<nav" not in body
    assert "HX-Request" in response.vary


def test_a_refused_row_action_is_an_alert(app, org_team):
    slug = org_team["slug"]
    create_link(org_team["owner"], slug, "keep-me")
    before = snapshot(app)

    response = mutate(org_team["member"], "DELETE", f"/orgs/{slug}/links/keep-me", slug)

    assert_alert(response, 403, "Only an admin or owner can delete links.")
    assert snapshot(app) == before


def test_an_action_on_a_link_deleted_meanwhile_is_an_alert(app, org_team):
    slug = org_team["slug"]
    create_link(org_team["owner"], slug, "gone-soon")
    owner = org_team["owner"]
    assert mutate(owner, "DELETE", f"/orgs/{slug}/links/gone-soon", slug).status_code == 200

    response = mutate(org_team["admin"], "POST", f"/orgs/{slug}/links/gone-soon/deactivate", slug)

    assert_alert(response, 404, "No such link in this organisation.")
    assert link_row(app, "gone-soon").is_active is True


def test_a_missing_csrf_token_on_an_htmx_request_is_an_alert(app, org_team):
    slug = org_team["slug"]
    create_link(org_team["owner"], slug, "stays-on")

    response = org_team["owner"].post(f"/orgs/{slug}/links/stays-on/deactivate", headers=HX)

    assert_alert(response, 400, "Reload the page and try again.")
    assert link_row(app, "stays-on").is_active is True


def test_the_same_refusal_without_htmx_is_a_whole_page(app, org_team):
    slug = org_team["slug"]
    create_link(org_team["owner"], slug, "keep-page")
    member = org_team["member"]

    response = member.post(
        f"/orgs/{slug}/links/keep-page/deactivate",
        data={"csrf_token": csrf_token(member, f"/orgs/{slug}/links")},
    )

    body = response.get_data(as_text=True)
    assert response.status_code == 403
    assert "HX-Retarget" not in response.headers
    assert "<html" in body
    assert "Only the link&#39;s creator, an admin or an owner" in body


def test_polling_a_deleted_links_count_raises_no_alert(app, org_team):
    slug = org_team["slug"]
    create_link(org_team["owner"], slug, "polled")
    update_row(app, "polled", click_count=7, human_click_count=7)
    polled = org_team["member"].get(f"/orgs/{slug}/links/polled/clicks", headers=HX)
    assert ">7<" in polled.text
    deleted = mutate(org_team["owner"], "DELETE", f"/orgs/{slug}/links/polled", slug)
    assert deleted.status_code == 200

    response = org_team["member"].get(f"/orgs/{slug}/links/polled/clicks", headers=HX)

    # 204 is one of htmx's no-swap statuses: the row stays as it was until the page reloads.
    assert response.status_code == 204
    assert response.get_data() == b""


def test_revoking_an_invitation_twice_is_an_alert(app, org_team):
    owner = org_team["owner"]
    invitation_id, _ = pending_invitation(app, owner, "new@example.com")
    revoke = f"/orgs/acme/invitations/{invitation_id}/revoke"
    assert post_form(owner, revoke, headers=HX).status_code == 200
    before = snapshot(app)

    response = post_form(org_team["admin"], revoke, headers=HX)

    assert_alert(response, 409, "This invitation is no longer pending.")
    assert snapshot(app) == before


@pytest.mark.parametrize(
    ("path", "form", "message"),
    [
        (
            "/orgs/acme/invitations",
            {"email": "boss@example.com", "role": "owner"},
            "Only an owner can invite an owner.",
        ),
        (
            "/orgs/acme/settings",
            {"name": "Hijacked", "allowed_email_domain": "evil.example"},
            "Only an owner can see or change the organisation",
        ),
    ],
    ids=["inviting an owner", "saving settings"],
)
def test_an_admin_doing_what_only_owners_may_is_an_alert(app, org_team, path, form, message):
    before = snapshot(app)

    response = post_form(org_team["admin"], path, form, headers=HX)

    assert_alert(response, 403, message)
    assert snapshot(app) == before
