"""Org administration: settings (rename, auto-join domain, delete), the audit log, the switcher.

Who may set which auto-join domain, and who joins by it, is in test_auto_join.py.
"""

import re

import pytest

from app.extensions import db
from app.models import AuditEvent, ClickRollup, DailyVisitor, Membership
from tests.click_factories import visit
from tests.conftest import create_org_as
from tests.link_helpers import create_link, link_row, post_link
from tests.org_helpers import HX, org_row, post_form, save_settings, snapshot


def test_owner_renames_the_org_and_the_slug_stays(app, org_team):
    response = save_settings(org_team["owner"], name="Acme Rockets")
    assert response.status_code == 302
    assert response.headers["Location"] == "/orgs/acme/settings"
    assert org_row(app).name == "Acme Rockets"
    assert "Acme Rockets" in org_team["member"].get("/orgs/acme/links").get_data(as_text=True)


def test_htmx_settings_save_gets_the_form_with_a_confirmation(org_team):
    response = save_settings(org_team["owner"], name="Acme Rockets", headers=HX)
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert page.lstrip().startswith('<form id="settings-form"')
    assert "Settings saved." in page


@pytest.mark.parametrize("role", ["admin", "member"])
@pytest.mark.parametrize("hx", [False, True])
def test_settings_page_is_refused_to_everyone_but_owners(org_team, role, hx):
    response = org_team[role].get("/orgs/acme/settings", headers=HX if hx else {})
    assert response.status_code == 403
    page = response.get_data(as_text=True)
    assert "Only an owner can see or change the organisation" in page
    assert 'id="settings-form"' not in page
    assert "Delete organisation" not in page


@pytest.mark.parametrize("role", ["admin", "member"])
def test_only_owners_save_settings(app, org_team, role):
    before = snapshot(app)
    response = save_settings(org_team[role], name="Hijacked", domain="evil.example")
    assert response.status_code == 403
    assert "Only an owner can see or change the organisation" in response.get_data(as_text=True)
    assert snapshot(app) == before


def test_owner_sees_the_settings_and_the_delete_form(org_team):
    response = org_team["owner"].get("/orgs/acme/settings")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert '<form id="settings-form"' in page
    assert "disabled" not in page
    assert '<form id="delete-org-form"' in page


@pytest.mark.parametrize(
    ("role", "settings_tab", "audit_tab"),
    [("owner", True, True), ("admin", False, True), ("member", False, False)],
)
def test_org_tabs_show_settings_to_owners_and_the_audit_log_to_admins(
    org_team, role, settings_tab, audit_tab
):
    page = org_team[role].get("/orgs/acme/members").get_data(as_text=True)
    nav = page[page.index('<nav class="org-nav"') : page.index("</nav>", page.index("org-nav"))]
    assert ('href="/orgs/acme/settings"' in nav) is settings_tab
    assert ('href="/orgs/acme/audit"' in nav) is audit_tab


@pytest.mark.parametrize(
    ("name", "domain", "field", "message"),
    [
        ("", "", "name", "Give the organisation a name."),
        ("x" * 101, "", "name", "100 characters or fewer"),
        ("Acme", "not a domain", "allowed_email_domain", "Enter a domain like acme.com"),
        ("Acme", "localhost", "allowed_email_domain", "Enter a domain like acme.com"),
        ("Acme", "ada@acme.com", "allowed_email_domain", "Enter a domain like acme.com"),
        ("Acme", "-acme.com", "allowed_email_domain", "Enter a domain like acme.com"),
        ("Acme", "acme\n.com", "allowed_email_domain", "Enter a domain like acme.com"),
        ("Acme", f"{'a' * 64}.com", "allowed_email_domain", "Enter a domain like acme.com"),
    ],
)
def test_invalid_settings_are_refused_inline(app, org_team, name, domain, field, message):
    before = snapshot(app)
    response = save_settings(org_team["owner"], name=name, domain=domain, headers=HX)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert f'id="{field}-error">' in page
    assert message in page
    assert snapshot(app) == before


def test_owner_deletes_the_org_after_typing_its_name(app, org_team):
    response = post_form(org_team["owner"], "/orgs/acme/delete", {"confirm_name": "Acme"})
    assert response.status_code == 302
    assert response.headers["Location"] == "/orgs"
    assert org_row(app) is None
    with app.app_context():
        assert db.session.execute(db.select(db.func.count(Membership.id))).scalar_one() == 0
        event = db.session.execute(db.select(AuditEvent)).scalar_one()
        assert (event.org_id, event.action, event.target) == (None, "org.deleted", "Acme")
    assert org_team["member"].get("/orgs/acme/links").status_code == 404


def test_deleting_an_org_keeps_its_link_slugs_retired(app, org_team, signed_in_client):
    create_link(org_team["owner"], "acme", "launch", "https://acme.example/launch")
    post_form(org_team["owner"], "/orgs/acme/delete", {"confirm_name": "Acme"})
    assert app.test_client().get("/launch").status_code == 410

    newcomer = signed_in_client("newcomer")
    other = create_org_as(newcomer, "Other")
    response = post_link(newcomer, other, "https://evil.example/", slug="launch")
    assert response.status_code == 409
    assert "retired" in response.get_data(as_text=True)
    assert app.test_client().get("/launch").status_code == 410


def test_deleting_an_org_deletes_its_links_click_figures_and_no_one_elses(
    app, org_team, signed_in_client
):
    create_link(org_team["owner"], "acme", "launch", "https://acme.example/launch")
    other_org = create_org_as(signed_in_client("neighbour"), "Neighbour")
    create_link(signed_in_client("neighbour"), other_org, "theirs", "https://n.example/")
    for slug in ("launch", "theirs"):
        visit(app, slug)
    kept = link_row(app, "theirs").id

    post_form(org_team["owner"], "/orgs/acme/delete", {"confirm_name": "Acme"})

    with app.app_context():
        for model in (ClickRollup, DailyVisitor):
            link_ids = set(db.session.execute(db.select(model.link_id)).scalars())
            assert link_ids == {kept}


@pytest.mark.parametrize("typed", ["", "acme", "Acme Inc", "ACME"])
def test_delete_with_the_wrong_name_is_refused_inline(app, org_team, typed):
    before = snapshot(app)
    response = post_form(org_team["owner"], "/orgs/acme/delete", {"confirm_name": typed}, HX)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert page.lstrip().startswith('<form id="delete-org-form"')
    assert 'id="confirm_name-error">Type the organisation' in page
    assert snapshot(app) == before


@pytest.mark.parametrize("role", ["admin", "member"])
def test_only_owners_delete_the_org(app, org_team, role):
    before = snapshot(app)
    response = post_form(org_team[role], "/orgs/acme/delete", {"confirm_name": "Acme"})
    assert response.status_code == 403
    assert "Only an owner can see or change the organisation" in response.get_data(as_text=True)
    assert snapshot(app) == before


def test_audit_log_shows_who_did_what_to_whom(app, org_team):
    save_settings(org_team["owner"], name="Acme Rockets")
    page = org_team["admin"].get("/orgs/acme/audit").get_data(as_text=True)
    assert "org.renamed" in page
    assert "Owner" in page
    assert "from: Acme, to: Acme Rockets" in page


def test_htmx_audit_log_request_gets_the_events_fragment(org_team):
    save_settings(org_team["owner"], name="Acme Rockets")
    response = org_team["admin"].get("/orgs/acme/audit", headers=HX)
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert page.lstrip().startswith('<section id="audit-events">')
    assert "org.renamed" in page
    assert "<html" not in page
    assert "HX-Request" in response.headers["Vary"]


def test_audit_log_shows_a_cleared_domain_as_none(org_team):
    save_settings(org_team["owner"], domain="example.com")
    save_settings(org_team["owner"], domain="")
    page = org_team["owner"].get("/orgs/acme/audit").get_data(as_text=True)
    assert "from: example.com, to: (none)" in page


@pytest.mark.parametrize("hx", [False, True])
def test_audit_log_is_hidden_from_members(org_team, signed_in_client, grant_role, hx):
    # Only an owner with an address at the domain may allow it.
    insider = signed_in_client("insider", email="insider@acme-secret.example")
    grant_role("acme", "insider", "owner")
    save_settings(insider, name="Acme Rockets", domain="acme-secret.example")
    post_form(
        org_team["owner"],
        "/orgs/acme/invitations",
        {"email": "hush@example.com", "role": "admin"},
    )
    response = org_team["member"].get("/orgs/acme/audit", headers=HX if hx else {})
    assert response.status_code == 403
    page = response.get_data(as_text=True)
    for leaked in ("org.renamed", "invitation.created", "hush@example.com", "acme-secret"):
        assert leaked not in page
    assert "audit-" not in page


def test_audit_log_shows_only_this_orgs_events(app, org_team, signed_in_client):
    other = signed_in_client("other-owner")
    create_org_as(other, "Other")
    post_form(other, "/orgs/other/settings", {"name": "Other Secret", "allowed_email_domain": ""})
    page = org_team["owner"].get("/orgs/acme/audit").get_data(as_text=True)
    assert "Other Secret" not in page
    assert "Nothing has been recorded yet." in page


def test_switcher_lists_my_orgs_when_i_am_in_several(org_team):
    create_org_as(org_team["member"], "Side Project")
    page = org_team["member"].get("/orgs/acme/members").get_data(as_text=True)
    assert 'data-testid="org-switcher"' in page
    assert 'href="/orgs/side-project/links"' in page
    assert re.search(r'href="/orgs/acme/links" dir="ltr"\s+aria-current="page"', page)


def test_no_switcher_for_people_in_one_org(org_team):
    page = org_team["member"].get("/orgs/acme/members").get_data(as_text=True)
    assert 'data-testid="org-switcher"' not in page


def test_switching_org_is_remembered(org_team):
    create_org_as(org_team["member"], "Side Project")
    org_team["member"].get("/orgs/acme/links")
    assert org_team["member"].get("/").headers["Location"] == "/orgs/acme/links"


def test_owner_lets_links_lead_to_intranet_addresses_and_takes_it_back(app, org_team):
    owner, member = org_team["owner"], org_team["member"]
    assert post_link(member, "acme", "http://10.0.0.5/wiki").status_code == 422
    form = {"name": "Acme", "allowed_email_domain": "", "allow_private_destinations": "1"}

    assert post_form(owner, "/orgs/acme/settings", form).status_code == 302

    assert org_row(app).allow_private_destinations is True
    assert 'name="allow_private_destinations"' in owner.get("/orgs/acme/settings").text
    create_link(member, "acme", "wiki", "http://10.0.0.5/wiki")
    create_link(member, "acme", "intranet", "http://intranet/")
    assert member.get("/wiki").headers["Location"] == "http://10.0.0.5/wiki"
    with app.app_context():
        event = db.session.execute(
            db.select(AuditEvent).filter_by(action="org.private_destinations_changed")
        ).scalar_one()
        assert (event.target, event.actor.oidc_subject) == ("allowed", "owner")

    # Unticked, the box is simply not sent: the setting goes off, and so do such links.
    assert save_settings(owner).status_code == 302
    assert org_row(app).allow_private_destinations is False
    assert member.get("/wiki").status_code == 410
    assert post_link(member, "acme", "http://10.0.0.6/").status_code == 422
