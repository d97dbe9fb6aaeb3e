"""The members page: who is in the org, changing roles, removing people, leaving, last owner.

Owners racing each other are in test_owner_races.py.
"""

import pytest

from app.extensions import db
from app.models import AuditEvent
from tests.org_helpers import HX, delete, owner_count, post_form, role_of, snapshot, user_id


def test_members_page_lists_name_email_role_and_join_date(app, org_team):
    response = org_team["member"].get("/orgs/acme/members")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    for sub, role in [("owner", "owner"), ("admin", "admin"), ("member", "member")]:
        row_start = page.index(f'id="member-{user_id(app, sub)}"')
        row = page[row_start : page.index("</tr>", row_start)]
        assert sub.title() in row
        assert f"{sub}@example.com" in row
        assert role in row
        assert "<time datetime=" in row
    assert "outsider@example.com" not in page


def test_htmx_members_request_gets_the_fragment(org_team):
    response = org_team["owner"].get("/orgs/acme/members", headers=HX)
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert page.lstrip().startswith('<div id="members-page">')
    assert "<html" not in page
    assert "HX-Request" in response.headers["Vary"]


def test_member_sees_no_role_controls_or_invitations(org_team):
    page = org_team["member"].get("/orgs/acme/members").get_data(as_text=True)
    assert 'name="role"' not in page
    assert "Remove" not in page
    assert "Invite someone" not in page


def test_admin_is_offered_member_and_admin_roles_but_not_owner(app, org_team):
    page = org_team["admin"].get("/orgs/acme/members").get_data(as_text=True)
    member_row = page[page.index(f'id="member-{user_id(app, "member")}"') :]
    member_row = member_row[: member_row.index("</tr>")]
    assert 'value="admin"' in member_row
    assert 'value="owner"' not in member_row
    owner_row = page[page.index(f'id="member-{user_id(app, "owner")}"') :]
    owner_row = owner_row[: owner_row.index("</tr>")]
    assert "Remove" not in owner_row


def test_admin_promotes_a_member_to_admin_inline(app, org_team):
    member_id = user_id(app, "member")
    response = post_form(
        org_team["admin"], f"/orgs/acme/members/{member_id}/role", {"role": "admin"}, HX
    )
    assert response.status_code == 200
    row = response.get_data(as_text=True)
    assert row.lstrip().startswith(f'<tr id="member-{member_id}">')
    assert '<option value="admin" selected>' in row
    # The row says the change was saved, since the select already showed it before.
    assert 'role="status">' in row
    assert "is now admin." in row
    assert role_of(app, "acme", "member") == "admin"


def test_role_change_without_javascript_redirects_to_the_members_page(app, org_team):
    member_id = user_id(app, "member")
    response = post_form(
        org_team["owner"], f"/orgs/acme/members/{member_id}/role", {"role": "admin"}
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "/orgs/acme/members"
    assert role_of(app, "acme", "member") == "admin"


def test_admin_demotes_another_admin(app, org_team, signed_in_client, grant_role):
    signed_in_client("second-admin")
    grant_role("acme", "second-admin", "admin")
    response = post_form(
        org_team["admin"],
        f"/orgs/acme/members/{user_id(app, 'second-admin')}/role",
        {"role": "member"},
        HX,
    )
    assert response.status_code == 200
    assert role_of(app, "acme", "second-admin") == "member"


def test_admin_cannot_promote_to_owner(app, org_team):
    before = snapshot(app)
    response = post_form(
        org_team["admin"],
        f"/orgs/acme/members/{user_id(app, 'member')}/role",
        {"role": "owner"},
        HX,
    )
    assert response.status_code == 403
    assert "Only an owner can make or remove owners." in response.get_data(as_text=True)
    assert snapshot(app) == before


def test_admin_cannot_demote_an_owner(app, org_team):
    before = snapshot(app)
    response = post_form(
        org_team["admin"], f"/orgs/acme/members/{user_id(app, 'owner')}/role", {"role": "member"}
    )
    assert response.status_code == 403
    assert snapshot(app) == before


def test_owner_makes_another_owner(app, org_team):
    response = post_form(
        org_team["owner"], f"/orgs/acme/members/{user_id(app, 'admin')}/role", {"role": "owner"}, HX
    )
    assert response.status_code == 200
    assert role_of(app, "acme", "admin") == "owner"


@pytest.mark.parametrize("role", ["", "superuser", "OWNERS"])
def test_unknown_role_is_refused_inline(app, org_team, role):
    before = snapshot(app)
    member_id = user_id(app, "member")
    response = post_form(
        org_team["owner"], f"/orgs/acme/members/{member_id}/role", {"role": role}, HX
    )
    assert response.status_code == 422
    row = response.get_data(as_text=True)
    assert row.lstrip().startswith(f'<tr id="member-{member_id}">')
    assert "Choose owner, admin or member." in row
    assert snapshot(app) == before


def test_role_change_for_someone_not_in_the_org_is_404(app, org_team):
    before = snapshot(app)
    response = post_form(
        org_team["owner"], f"/orgs/acme/members/{user_id(app, 'outsider')}/role", {"role": "admin"}
    )
    assert response.status_code == 404
    assert snapshot(app) == before


def test_last_owner_cannot_demote_themselves(app, org_team):
    before = snapshot(app)
    response = post_form(
        org_team["owner"], f"/orgs/acme/members/{user_id(app, 'owner')}/role", {"role": "admin"}, HX
    )
    assert response.status_code == 409
    assert "at least one owner" in response.get_data(as_text=True)
    assert role_of(app, "acme", "owner") == "owner"
    assert snapshot(app) == before


def test_one_of_two_owners_may_step_down(app, org_team, grant_role, signed_in_client):
    signed_in_client("co-owner")
    grant_role("acme", "co-owner", "owner")
    response = post_form(
        org_team["owner"], f"/orgs/acme/members/{user_id(app, 'owner')}/role", {"role": "admin"}, HX
    )
    # My own role changed, so the whole page reloads with what I may now do.
    assert response.status_code == 204
    assert response.headers["HX-Redirect"] == "/orgs/acme/members"
    assert role_of(app, "acme", "owner") == "admin"
    assert owner_count(app, "acme") == 1


def test_admin_removes_a_member_inline(app, org_team):
    response = delete(org_team["admin"], f"/orgs/acme/members/{user_id(app, 'member')}", HX)
    assert response.status_code == 200
    assert response.get_data(as_text=True) == ""
    assert role_of(app, "acme", "member") is None
    assert org_team["member"].get("/orgs/acme/links").status_code == 404


def test_remove_without_javascript_uses_the_post_route(app, org_team):
    response = post_form(org_team["admin"], f"/orgs/acme/members/{user_id(app, 'member')}/remove")
    assert response.status_code == 302
    assert response.headers["Location"] == "/orgs/acme/members"
    assert role_of(app, "acme", "member") is None


def test_delete_without_csrf_header_is_refused(app, org_team):
    before = snapshot(app)
    response = org_team["admin"].delete(f"/orgs/acme/members/{user_id(app, 'member')}", headers=HX)
    assert response.status_code == 400
    assert snapshot(app) == before


def test_admin_cannot_remove_an_owner(app, org_team):
    before = snapshot(app)
    response = delete(org_team["admin"], f"/orgs/acme/members/{user_id(app, 'owner')}", HX)
    assert response.status_code == 403
    assert "Only an owner can remove an owner." in response.get_data(as_text=True)
    assert snapshot(app) == before


def test_member_cannot_remove_anyone(app, org_team):
    before = snapshot(app)
    response = delete(org_team["member"], f"/orgs/acme/members/{user_id(app, 'admin')}", HX)
    assert response.status_code == 403
    assert snapshot(app) == before


def test_last_owner_cannot_be_removed(app, org_team):
    before = snapshot(app)
    response = delete(org_team["owner"], f"/orgs/acme/members/{user_id(app, 'owner')}")
    assert response.status_code == 409
    assert "at least one owner" in response.get_data(as_text=True)
    assert snapshot(app) == before


def test_member_leaves_the_org(app, org_team):
    response = post_form(org_team["member"], "/orgs/acme/leave")
    assert response.status_code == 302
    assert response.headers["Location"] == "/orgs"
    assert role_of(app, "acme", "member") is None
    assert "You left Acme." in org_team["member"].get("/orgs").get_data(as_text=True)


def test_last_owner_cannot_leave(app, org_team):
    before = snapshot(app)
    response = post_form(org_team["owner"], "/orgs/acme/leave")
    assert response.status_code == 409
    assert "An organisation needs at least one owner." in response.get_data(as_text=True)
    assert snapshot(app) == before


def test_last_owner_leaving_with_htmx_sees_why_next_to_the_button(app, org_team):
    before = snapshot(app)
    response = post_form(org_team["owner"], "/orgs/acme/leave", headers=HX)
    assert response.status_code == 409
    page = response.get_data(as_text=True)
    assert page.lstrip().startswith('<section id="leave">')
    assert "An organisation needs at least one owner." in page
    assert snapshot(app) == before


def test_member_leaving_with_htmx_is_sent_to_the_org_list(app, org_team):
    response = post_form(org_team["member"], "/orgs/acme/leave", headers=HX)
    assert response.status_code == 204
    assert response.headers["HX-Redirect"] == "/orgs"
    assert role_of(app, "acme", "member") is None


def test_role_changes_and_removals_are_audited(app, org_team):
    member_id = user_id(app, "member")
    post_form(org_team["owner"], f"/orgs/acme/members/{member_id}/role", {"role": "admin"})
    delete(org_team["owner"], f"/orgs/acme/members/{member_id}")
    post_form(org_team["admin"], "/orgs/acme/leave")
    with app.app_context():
        events = [
            (event.actor.oidc_subject, event.action, event.target, event.details)
            for event in db.session.execute(db.select(AuditEvent).order_by(AuditEvent.id)).scalars()
        ]
    assert events == [
        ("owner", "member.role_changed", "member@example.com", '{"from": "member", "to": "admin"}'),
        ("owner", "member.removed", "member@example.com", '{"role": "admin"}'),
        ("admin", "member.left", "admin@example.com", '{"role": "admin"}'),
    ]


def test_signed_out_htmx_request_gets_401_and_a_sign_in_redirect(client, org_team):
    response = client.get("/orgs/acme/members", headers=HX)
    assert response.status_code == 401
    assert response.headers["HX-Redirect"] == "/login?next=%2Forgs%2Facme%2Fmembers"
    assert "member@example.com" not in response.get_data(as_text=True)


def test_signed_out_page_request_is_sent_to_sign_in(client, org_team):
    response = client.get("/orgs/acme/members")
    assert response.status_code == 302
    assert response.headers["Location"] == "/login?next=%2Forgs%2Facme%2Fmembers"


def test_remove_button_deletes_with_htmx_and_posts_without_it(app, org_team):
    member_id = user_id(app, "member")
    page = org_team["admin"].get("/orgs/acme/members").get_data(as_text=True)
    assert f'hx-delete="/orgs/acme/members/{member_id}"' in page
    assert f'action="/orgs/acme/members/{member_id}/remove"' in page


def test_a_member_without_a_name_is_shown_by_email_not_by_provider_subject(
    app, org_team, signed_in_client, grant_role
):
    signed_in_client("c0ffee-subject-42", email="quiet@example.com", name="")
    grant_role("acme", "c0ffee-subject-42", "member")
    quiet_id = user_id(app, "c0ffee-subject-42")
    for headers in ({}, HX):
        page = org_team["owner"].get("/orgs/acme/members", headers=headers).get_data(as_text=True)
        row_start = page.index(f'id="member-{quiet_id}"')
        row = page[row_start : page.index("</tr>", row_start)]
        assert "<td>quiet@example.com</td>" in row
        assert "c0ffee-subject-42" not in page
