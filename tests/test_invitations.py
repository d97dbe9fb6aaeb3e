"""Invitations: inviting by email and role, the one-time link, revoking, and accepting it."""

import hashlib
import re
from datetime import timedelta

import pytest

from app.extensions import db
from app.models import AuditEvent, Invitation, User, utcnow
from tests.org_helpers import HX, invite, invite_link, post_form, role_of, snapshot, user_id


def path_of(link: str) -> str:
    return link.removeprefix("http://localhost")


def test_admin_invites_an_email_and_sees_a_copyable_link(app, org_team):
    response = invite(org_team["admin"], "New.Person@Example.com", "admin", HX)
    assert response.status_code == 200
    link = invite_link(response)
    assert re.fullmatch(r"http://localhost/invitations/[A-Za-z0-9_-]{43}", link)
    assert "new.person@example.com" in response.get_data(as_text=True)
    assert f'<button type="button" class="secondary" data-copy="{link}">Copy</button>' in (
        response.get_data(as_text=True)
    )
    with app.app_context():
        invitation = db.session.execute(db.select(Invitation)).scalar_one()
        token = link.rsplit("/", 1)[1]
        assert invitation.token_hash == hashlib.sha256(token.encode()).hexdigest()
        assert token not in invitation.token_hash
        assert (invitation.email, invitation.role) == ("new.person@example.com", "admin")
        lifetime = invitation.expires_at - invitation.created_at
        assert timedelta(days=7) - timedelta(seconds=5) < lifetime <= timedelta(days=7)


def test_htmx_invite_gets_the_invitations_fragment(org_team):
    response = invite(org_team["owner"], "new@example.com", headers=HX)
    page = response.get_data(as_text=True)
    assert page.lstrip().startswith('<section id="invitations">')
    assert "<html" not in page


def test_invite_without_javascript_gets_the_full_page_with_the_link(org_team):
    response = invite(org_team["owner"], "new@example.com")
    assert response.status_code == 200
    assert "<html" in response.get_data(as_text=True)
    assert invite_link(response)


def test_pending_invitations_are_listed_for_admins_only(org_team):
    invite(org_team["owner"], "new@example.com", "admin")
    assert "new@example.com" in org_team["admin"].get("/orgs/acme/members").get_data(as_text=True)
    assert "new@example.com" not in org_team["member"].get("/orgs/acme/members").get_data(
        as_text=True
    )


def test_admin_cannot_invite_an_owner(app, org_team):
    before = snapshot(app)
    response = invite(org_team["admin"], "boss@example.com", "owner")
    assert response.status_code == 403
    assert "Only an owner can invite an owner." in response.get_data(as_text=True)
    assert snapshot(app) == before


def test_owner_can_invite_an_owner(app, org_team):
    response = invite(org_team["owner"], "boss@example.com", "owner")
    assert response.status_code == 200
    assert invite_link(response)
    with app.app_context():
        rows = db.session.execute(db.select(Invitation.email, Invitation.role)).all()
    assert [tuple(row) for row in rows] == [("boss@example.com", "owner")]


def test_member_cannot_invite(app, org_team):
    before = snapshot(app)
    assert invite(org_team["member"], "friend@example.com").status_code == 403
    assert snapshot(app) == before


@pytest.mark.parametrize(
    "email",
    [
        "",
        "   ",
        "no-at-sign",
        "two@@example.com",
        "a@b@example.com",
        "ada@localhost",
        "ada lovelace@example.com",
        "@example.com",
        "ada@.com",
        f"{'a' * 310}@example.com",
        f"ada@{'a' * 64}.com",
        f"ada@{'ü' * 60}.de",
        "ada@-acme.com",
        "ada@acme-.com",
        "ada@acme_corp.com",
        "ada@acme..com",
    ],
)
def test_invalid_email_is_refused_next_to_the_field(app, org_team, email):
    before = snapshot(app)
    response = invite(org_team["owner"], email, headers=HX)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert page.lstrip().startswith('<section id="invitations">')
    assert 'id="email-error"' in page
    assert 'aria-invalid="true"' in page
    assert snapshot(app) == before


@pytest.mark.parametrize(
    "email", [f"ada@{'a' * 63}.com", "ada@bücher.de", "ada@xn--bcher-kva.de", "a.b+c@mail.acme.io"]
)
def test_emails_with_valid_domain_labels_are_invited(app, org_team, email):
    response = invite(org_team["owner"], email, headers=HX)
    assert response.status_code == 200
    assert invite_link(response)
    with app.app_context():
        assert db.session.execute(db.select(Invitation.email)).scalar_one() == email


def test_inviting_an_existing_member_is_refused_next_to_the_field(app, org_team):
    before = snapshot(app)
    response = invite(org_team["owner"], "MEMBER@example.com")
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert 'id="email-error">member@example.com is already a member of Acme.' in page
    assert "<html" in page
    assert snapshot(app) == before


def test_unknown_invite_role_is_refused(app, org_team):
    before = snapshot(app)
    response = invite(org_team["owner"], "new@example.com", "root")
    assert response.status_code == 422
    assert 'id="role-error"' in response.get_data(as_text=True)
    assert snapshot(app) == before


def test_reinviting_an_email_replaces_the_pending_invitation(org_team, signed_in_client):
    first = path_of(invite_link(invite(org_team["owner"], "new@example.com")))
    second = path_of(invite_link(invite(org_team["owner"], "new@example.com")))
    newcomer = signed_in_client("newcomer", email="new@example.com")
    assert newcomer.get(first).status_code == 410
    assert newcomer.get(second).status_code == 200


def test_invitee_accepts_and_joins_with_the_role(app, org_team, signed_in_client):
    path = path_of(invite_link(invite(org_team["owner"], "new@example.com", "admin")))
    newcomer = signed_in_client("newcomer", email="New@Example.com", email_verified=True)
    page = newcomer.get(path)
    assert page.status_code == 200
    assert "Join Acme" in page.get_data(as_text=True)
    response = post_form(newcomer, path)
    assert response.status_code == 302
    assert response.headers["Location"] == "/orgs/acme/links"
    assert role_of(app, "acme", "newcomer") == "admin"
    # The browser follows to the dashboard, and from then on `/` returns there.
    assert newcomer.get(response.headers["Location"]).status_code == 200
    assert newcomer.get("/").headers["Location"] == "/orgs/acme/links"


def test_signed_out_invitee_is_sent_to_sign_in_and_back(client, org_team, sign_in):
    path = path_of(invite_link(invite(org_team["owner"], "new@example.com")))
    response = client.get(path)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")
    callback = sign_in("newcomer", email="new@example.com", next_path=path)
    assert callback.headers["Location"] == path


def test_invitation_is_single_use(app, org_team, signed_in_client):
    path = path_of(invite_link(invite(org_team["owner"], "new@example.com")))
    newcomer = signed_in_client("newcomer", email="new@example.com")
    assert post_form(newcomer, path).status_code == 302
    before = snapshot(app)
    for response in (newcomer.get(path), post_form(newcomer, path)):
        assert response.status_code == 410
        assert "This invitation has already been used." in response.get_data(as_text=True)
    assert snapshot(app) == before


def test_revoked_invitation_is_gone(app, org_team, signed_in_client):
    path = path_of(invite_link(invite(org_team["owner"], "new@example.com")))
    with app.app_context():
        invitation_id = db.session.execute(db.select(Invitation.id)).scalar_one()
    revoked = post_form(
        org_team["admin"], f"/orgs/acme/invitations/{invitation_id}/revoke", headers=HX
    )
    assert revoked.status_code == 200
    assert revoked.get_data(as_text=True) == ""
    newcomer = signed_in_client("newcomer", email="new@example.com")
    before = snapshot(app)
    for response in (newcomer.get(path), post_form(newcomer, path)):
        assert response.status_code == 410
        assert "This invitation was revoked. Ask for a new one." in response.get_data(as_text=True)
    assert snapshot(app) == before
    assert role_of(app, "acme", "newcomer") is None
    assert "new@example.com" not in org_team["owner"].get("/orgs/acme/members").get_data(
        as_text=True
    )


def test_expired_invitation_is_gone(app, org_team, signed_in_client):
    path = path_of(invite_link(invite(org_team["owner"], "new@example.com")))
    with app.app_context():
        invitation = db.session.execute(db.select(Invitation)).scalar_one()
        invitation.expires_at = utcnow() - timedelta(seconds=1)
        db.session.commit()
    newcomer = signed_in_client("newcomer", email="new@example.com")
    before = snapshot(app)
    for response in (newcomer.get(path), post_form(newcomer, path)):
        assert response.status_code == 410
        assert "This invitation has expired. Ask for a new one." in response.get_data(as_text=True)
    assert snapshot(app) == before
    assert role_of(app, "acme", "newcomer") is None


def test_unknown_token_is_404_and_says_the_link_is_not_valid(app, org_team, signed_in_client):
    newcomer = signed_in_client("newcomer", email="new@example.com")
    before = snapshot(app)
    path = "/invitations/not-a-real-token"
    for response in (newcomer.get(path), post_form(newcomer, path)):
        assert response.status_code == 404
        assert "This invitation link is not valid." in response.get_data(as_text=True)
    assert snapshot(app) == before


def test_someone_with_another_email_is_refused(app, org_team, signed_in_client):
    path = path_of(invite_link(invite(org_team["owner"], "new@example.com")))
    stranger = signed_in_client("stranger", email="stranger@example.com")
    assert stranger.get(path).status_code == 403
    before = snapshot(app)
    response = post_form(stranger, path)
    assert response.status_code == 403
    assert "sent to another email address" in response.get_data(as_text=True)
    assert snapshot(app) == before
    assert role_of(app, "acme", "stranger") is None


def test_unverified_email_cannot_accept(app, org_team, signed_in_client):
    path = path_of(invite_link(invite(org_team["owner"], "new@example.com")))
    unverified = signed_in_client("unverified", email="new@example.com", email_verified=False)
    before = snapshot(app)
    response = post_form(unverified, path)
    assert response.status_code == 403
    assert "has not verified your email address" in response.get_data(as_text=True)
    assert snapshot(app) == before


def test_revoking_needs_an_admin(app, org_team):
    invite(org_team["owner"], "new@example.com")
    with app.app_context():
        invitation_id = db.session.execute(db.select(Invitation.id)).scalar_one()
    before = snapshot(app)
    response = post_form(org_team["member"], f"/orgs/acme/invitations/{invitation_id}/revoke")
    assert response.status_code == 403
    assert snapshot(app) == before


def test_invitation_of_another_org_cannot_be_revoked(app, org_team, signed_in_client):
    other = signed_in_client("other-owner")
    post_form(other, "/orgs", {"name": "Other"})
    post_form(other, "/orgs/other/invitations", {"email": "x@example.com", "role": "member"})
    with app.app_context():
        invitation_id = db.session.execute(db.select(Invitation.id)).scalar_one()
    before = snapshot(app)
    response = post_form(org_team["owner"], f"/orgs/acme/invitations/{invitation_id}/revoke")
    assert response.status_code == 404
    assert snapshot(app) == before


def audit_events(app) -> list:
    """Every audit event as (actor sub, action, target, details, at), oldest first."""
    with app.app_context():
        return [
            (event.actor.oidc_subject, event.action, event.target, event.details, event.at)
            for event in db.session.execute(db.select(AuditEvent).order_by(AuditEvent.id)).scalars()
        ]


def test_revoking_an_invitation_is_audited(app, org_team):
    invite(org_team["owner"], "new@example.com", "admin")
    with app.app_context():
        invitation_id = db.session.execute(db.select(Invitation.id)).scalar_one()
    started = utcnow()
    post_form(org_team["admin"], f"/orgs/acme/invitations/{invitation_id}/revoke", headers=HX)
    revoked = audit_events(app)[-1]
    assert revoked[:4] == ("admin", "invitation.revoked", "new@example.com", '{"role": "admin"}')
    assert started <= revoked[4] <= utcnow()
    page = org_team["owner"].get("/orgs/acme/audit").get_data(as_text=True)
    rows = re.findall(r'<tr id="audit-\d+">.*?</tr>', page, re.DOTALL)
    [row] = [row for row in rows if "invitation.revoked" in row]
    assert "<td>Admin</td>" in row
    assert "<td>new@example.com</td>" in row
    assert revoked[4].strftime("%Y-%m-%d %H:%M:%S") in row


def test_replacing_an_invitation_is_audited(app, org_team):
    invite(org_team["owner"], "new@example.com", "member")
    started = utcnow()
    invite(org_team["admin"], "new@example.com", "admin")
    events = audit_events(app)
    assert [event[:4] for event in events] == [
        ("owner", "invitation.created", "new@example.com", '{"role": "member"}'),
        ("admin", "invitation.replaced", "new@example.com", '{"role": "member"}'),
        ("admin", "invitation.created", "new@example.com", '{"role": "admin"}'),
    ]
    assert started <= events[1][4] <= utcnow()


def test_invitations_are_audited(app, org_team, signed_in_client):
    path = path_of(invite_link(invite(org_team["owner"], "new@example.com", "admin")))
    post_form(signed_in_client("newcomer", email="new@example.com"), path)
    with app.app_context():
        events = [
            (event.actor.oidc_subject, event.action, event.target, event.details)
            for event in db.session.execute(db.select(AuditEvent).order_by(AuditEvent.id)).scalars()
        ]
    assert events == [
        ("owner", "invitation.created", "new@example.com", '{"role": "admin"}'),
        ("newcomer", "invitation.accepted", "new@example.com", '{"role": "admin"}'),
    ]


# An invitation grants at most its sender's current role


def invitation_state(app) -> tuple:
    """The only invitation's (email, role, accepted_at, revoked_at)."""
    with app.app_context():
        invitation = db.session.execute(db.select(Invitation)).scalar_one()
        return invitation.email, invitation.role, invitation.accepted_at, invitation.revoked_at


@pytest.mark.parametrize("change", ["demoted", "removed"])
def test_an_owner_invitation_dies_with_its_senders_ownership(
    app, org_team, signed_in_client, grant_role, change
):
    co_owner = signed_in_client("co-owner")
    grant_role("acme", "co-owner", "owner")
    path = path_of(invite_link(invite(co_owner, "boss@example.com", "owner")))
    co_owner_path = f"/orgs/acme/members/{user_id(app, 'co-owner')}"
    if change == "demoted":
        post_form(org_team["owner"], f"{co_owner_path}/role", {"role": "admin"})
    else:
        post_form(org_team["owner"], f"{co_owner_path}/remove")
    boss = signed_in_client("boss")
    before = snapshot(app)

    response = post_form(boss, path)

    assert response.status_code == 409
    assert (
        "This invitation can no longer be accepted: it offers the owner role, and the person "
        "who sent it is no longer an owner here. Ask an owner for a new invitation."
    ) in response.get_data(as_text=True)
    assert role_of(app, "acme", "boss") is None
    assert invitation_state(app) == ("boss@example.com", "owner", None, None)
    assert snapshot(app) == before


def test_an_invitation_whose_sender_was_deleted_is_refused(app, org_team, signed_in_client):
    path = path_of(invite_link(invite(org_team["admin"], "new@example.com", "member")))
    with app.app_context():
        # As the database deletes a user: their memberships go, invitations forget them.
        db.session.execute(db.delete(User).filter_by(id=user_id(app, "admin")))
        db.session.commit()
    newcomer = signed_in_client("newcomer", email="new@example.com")
    before = snapshot(app)

    response = post_form(newcomer, path)

    assert response.status_code == 409
    assert (
        "it offers the member role, and the person who sent it is no longer a member here. "
        "Ask an owner or admin for a new invitation."
    ) in response.get_data(as_text=True)
    assert role_of(app, "acme", "newcomer") is None
    assert invitation_state(app) == ("new@example.com", "member", None, None)
    assert snapshot(app) == before


def test_an_invitation_within_its_senders_new_role_is_still_accepted(
    app, org_team, signed_in_client, grant_role
):
    co_owner = signed_in_client("co-owner")
    grant_role("acme", "co-owner", "owner")
    path = path_of(invite_link(invite(co_owner, "new@example.com", "admin")))
    post_form(
        org_team["owner"], f"/orgs/acme/members/{user_id(app, 'co-owner')}/role", {"role": "admin"}
    )

    response = post_form(signed_in_client("newcomer", email="new@example.com"), path)

    assert response.status_code == 302
    assert role_of(app, "acme", "newcomer") == "admin"
