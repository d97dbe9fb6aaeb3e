"""Auto-join by email domain: who may allow which domain, who joins by it, and who never
joins by it again (whoever was removed or left)."""

import pytest
from sqlalchemy import event, update

from app.extensions import db
from app.models import AuditEvent, DepartedMember, Org, User
from tests.conftest import create_org_as
from tests.org_helpers import (
    HX,
    Action,
    delete,
    invite,
    invite_link,
    org_row,
    post_form,
    race,
    role_of,
    save_settings,
    snapshot,
    user_id,
)

DOMAIN_ERROR = 'id="allowed_email_domain-error">'


@pytest.fixture
def acme_mail(org_team, signed_in_client, grant_role):
    """acme with a second owner, Cora, whose verified address is at acme.com and who has
    allowed acme.com."""
    cora = signed_in_client("cora", email="cora@acme.com")
    grant_role("acme", "cora", "owner")
    assert save_settings(cora, domain="acme.com").status_code == 302
    return cora


def departures(app) -> list[tuple[str, str]]:
    """Every departed-member record as (the user's subject, reason)."""
    with app.app_context():
        rows = db.session.execute(
            db.select(User.oidc_subject, DepartedMember.reason)
            .join(User, User.id == DepartedMember.user_id)
            .order_by(DepartedMember.id)
        )
        return [tuple(row) for row in rows]


# Who may allow a domain


def test_owner_allows_the_domain_of_their_own_verified_email_and_clears_it(app, org_team):
    assert save_settings(org_team["owner"], domain="  @Example.COM ").status_code == 302
    assert org_row(app).allowed_email_domain == "example.com"
    assert save_settings(org_team["owner"], domain="").status_code == 302
    assert org_row(app).allowed_email_domain is None


@pytest.mark.parametrize("domain", ["acme.com", "mail.example.com"])
@pytest.mark.parametrize("hx", [False, True], ids=["page", "htmx"])
def test_a_domain_other_than_the_owners_own_is_refused_next_to_the_field(app, org_team, domain, hx):
    before = snapshot(app)
    response = save_settings(org_team["owner"], domain=domain, headers=HX if hx else None)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert page.lstrip().startswith('<form id="settings-form"') is hx
    assert (
        f"{DOMAIN_ERROR}You can only allow the domain of your own verified email address "
        "(owner@example.com)."
    ) in page
    assert 'aria-describedby="allowed_email_domain-error"' in page
    assert snapshot(app) == before


@pytest.mark.parametrize("provider", ["gmail.com", "outlook.com", "proton.me"])
def test_a_public_email_provider_is_refused_even_for_its_own_users(app, signed_in_client, provider):
    gus = signed_in_client("gus", email=f"gus@{provider}")
    create_org_as(gus, "Gus")
    before = snapshot(app)
    response = save_settings(gus, name="Gus", domain=provider, headers=HX, org_slug="gus")
    assert response.status_code == 422
    assert (
        f"{DOMAIN_ERROR}{provider} is a public email provider: anyone can get an address there"
    ) in response.get_data(as_text=True)
    assert snapshot(app) == before


def test_an_owner_whose_email_is_not_verified_cannot_allow_a_domain(app, signed_in_client):
    una = signed_in_client("una", email="una@una.example", email_verified=False)
    create_org_as(una, "Una")
    before = snapshot(app)
    response = save_settings(una, name="Una", domain="una.example", headers=HX, org_slug="una")
    assert response.status_code == 422
    assert (
        f"{DOMAIN_ERROR}Your identity provider has not verified your email address"
    ) in response.get_data(as_text=True)
    assert snapshot(app) == before


def test_a_domain_another_org_already_uses_is_refused(app, org_team, signed_in_client):
    olive = signed_in_client("olive", email="olive@example.com")
    create_org_as(olive, "Other")
    assert (
        save_settings(olive, name="Other", domain="example.com", org_slug="other").status_code
        == 302
    )
    before = snapshot(app)
    response = save_settings(org_team["owner"], domain="example.com", headers=HX)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert (
        f"{DOMAIN_ERROR}Another organisation already lets people at example.com join "
        "automatically, and a domain can lead into one organisation only."
    ) in page
    # It does not say which organisation.
    assert "Other" not in page
    assert snapshot(app) == before


def test_two_orgs_allowing_one_domain_at_once_get_it_once(app, org_team, signed_in_client):
    olive = signed_in_client("olive", email="olive@example.com")
    create_org_as(olive, "Other")
    for _ in range(5):
        responses = race(
            Action(
                org_team["owner"],
                "/orgs/acme/settings",
                {"name": "Acme", "allowed_email_domain": "example.com"},
            ),
            Action(
                olive,
                "/orgs/other/settings",
                {"name": "Other", "allowed_email_domain": "example.com"},
            ),
        )
        statuses = [response.status_code for response in responses]
        assert sorted(statuses) == [302, 422], statuses
        refused = responses[statuses.index(422)].get_data(as_text=True)
        assert "Another organisation already lets people at example.com join" in refused
        domains = [org_row(app, slug).allowed_email_domain for slug in ("acme", "other")]
        assert sorted(domains, key=lambda domain: domain or "") == [None, "example.com"]
        with app.app_context():
            db.session.execute(update(Org).values(allowed_email_domain=None))
            db.session.commit()


def test_a_domain_taken_between_the_check_and_the_save_is_refused_not_a_500(
    app, org_team, signed_in_client
):
    olive = signed_in_client("olive", email="olive@example.com")
    create_org_as(olive, "Other")
    other_id = org_row(app, "other").id

    def other_org_takes_it(session, flush_context, instances):
        """Do what another owner's save committing the same domain right now would."""
        session.connection().execute(
            update(Org).where(Org.id == other_id).values(allowed_email_domain="example.com")
        )

    event.listen(db.session, "before_flush", other_org_takes_it, once=True)
    try:
        response = save_settings(org_team["owner"], name="Acme Rockets", domain="example.com")
    finally:
        if event.contains(db.session, "before_flush", other_org_takes_it):
            event.remove(db.session, "before_flush", other_org_takes_it)
    assert response.status_code == 422
    assert "Another organisation already lets people at example.com join" in response.text
    # Nothing of the refused save was kept, the rename neither.
    assert (org_row(app).name, org_row(app).allowed_email_domain) == ("Acme", None)
    assert org_row(app, "other").allowed_email_domain is None


def test_a_domain_set_before_the_rule_stays_when_other_settings_change(app, org_team):
    with app.app_context():
        db.session.execute(update(Org).values(allowed_email_domain="acme.com"))
        db.session.commit()
    response = save_settings(org_team["owner"], name="Acme Rockets", domain="acme.com")
    assert response.status_code == 302
    assert (org_row(app).name, org_row(app).allowed_email_domain) == ("Acme Rockets", "acme.com")


# Who joins by it


def test_verified_email_at_the_allowed_domain_joins_as_member(app, acme_mail, signed_in_client):
    newcomer = signed_in_client("newcomer", email="Newcomer@ACME.com", email_verified=True)
    assert role_of(app, "acme", "newcomer") == "member"
    assert newcomer.get("/orgs/acme/links").status_code == 200


def test_auto_join_says_so_after_sign_in(app, acme_mail, client, sign_in):
    sign_in("newcomer", email="newcomer@acme.com")
    assert "You joined Acme" in client.get("/orgs").get_data(as_text=True)


def test_unverified_email_at_the_allowed_domain_does_not_join(app, acme_mail, signed_in_client):
    newcomer = signed_in_client("newcomer", email="newcomer@acme.com", email_verified=False)
    assert role_of(app, "acme", "newcomer") is None
    assert newcomer.get("/orgs/acme/links").status_code == 404


@pytest.mark.parametrize("email", ["eve@evil-acme.com", "eve@mail.acme.com", "eve@acme.com.evil"])
def test_only_the_exact_domain_joins(app, acme_mail, signed_in_client, email):
    signed_in_client("eve", email=email)
    assert role_of(app, "acme", "eve") is None


def test_auto_join_keeps_an_existing_role(app, org_team, signed_in_client):
    save_settings(org_team["owner"], domain="example.com")
    signed_in_client("admin")
    assert role_of(app, "acme", "admin") == "admin"


def test_auto_join_is_audited(app, acme_mail, signed_in_client):
    signed_in_client("newcomer", email="newcomer@acme.com")
    with app.app_context():
        events = [
            (event.actor.oidc_subject, event.action, event.target, event.details)
            for event in db.session.execute(db.select(AuditEvent).order_by(AuditEvent.id)).scalars()
        ]
    assert events == [
        ("cora", "org.email_domain_changed", "acme.com", '{"from": null, "to": "acme.com"}'),
        ("newcomer", "member.auto_joined", "newcomer@acme.com", '{"domain": "acme.com"}'),
    ]


# Who never joins by it again


def test_a_removed_member_is_not_added_back_at_sign_in(app, org_team, signed_in_client):
    save_settings(org_team["owner"], domain="example.com")
    assert (
        delete(org_team["owner"], f"/orgs/acme/members/{user_id(app, 'member')}").status_code == 302
    )
    member = signed_in_client("member")
    assert role_of(app, "acme", "member") is None
    assert member.get("/orgs/acme/links").status_code == 404
    assert "You joined Acme" not in member.get("/orgs").get_data(as_text=True)
    assert departures(app) == [("member", "removed")]


def test_a_member_who_left_is_not_added_back_at_sign_in(app, org_team, signed_in_client):
    save_settings(org_team["owner"], domain="example.com")
    assert post_form(org_team["member"], "/orgs/acme/leave").status_code == 302
    signed_in_client("member")
    assert role_of(app, "acme", "member") is None
    assert departures(app) == [("member", "left")]


def test_leaving_again_updates_the_one_record(app, org_team, grant_role):
    delete(org_team["owner"], f"/orgs/acme/members/{user_id(app, 'member')}")
    with app.app_context():
        removed_at = db.session.execute(db.select(DepartedMember.departed_at)).scalar_one()
    # Back in by a way that keeps the record (an operator's fix, say), then out again.
    grant_role("acme", "member", "member")
    assert post_form(org_team["member"], "/orgs/acme/leave").status_code == 302
    assert departures(app) == [("member", "left")]
    with app.app_context():
        left_at = db.session.execute(db.select(DepartedMember.departed_at)).scalar_one()
    assert left_at >= removed_at


def test_an_invitation_brings_a_removed_member_back_and_clears_the_record(
    app, org_team, signed_in_client
):
    save_settings(org_team["owner"], domain="example.com")
    delete(org_team["owner"], f"/orgs/acme/members/{user_id(app, 'member')}")
    link = invite_link(invite(org_team["owner"], "member@example.com", "admin"))
    member = signed_in_client("member")
    assert post_form(member, link.removeprefix("http://localhost")).status_code == 302
    assert role_of(app, "acme", "member") == "admin"
    assert departures(app) == []
