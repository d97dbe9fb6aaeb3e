"""Creating orgs, landing on the last one, and 404 for anyone who is not a member."""

import pytest

from app.extensions import db
from app.models import Membership, Org
from tests.conftest import csrf_token


def create_org(client, name: str, **headers):
    return client.post(
        "/orgs", data={"name": name, "csrf_token": csrf_token(client)}, headers=headers
    )


def test_signed_out_home_is_the_landing_page(client):
    response = client.get("/")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "Sign in" in page
    assert 'href="/login"' in page


def test_new_user_lands_on_the_org_list(client, sign_in):
    sign_in("ada")
    response = client.get("/")
    assert response.status_code == 302
    assert response.headers["Location"] == "/orgs"
    assert "not in any organisation yet" in client.get("/orgs").get_data(as_text=True)


def test_creating_an_org_makes_the_creator_owner(app, client, sign_in):
    sign_in("ada")
    response = create_org(client, "  Acme   Rockets ")
    assert response.status_code == 302
    assert response.headers["Location"] == "/orgs/acme-rockets/links"
    with app.app_context():
        org = db.session.execute(db.select(Org)).scalar_one()
        assert (org.name, org.slug) == ("Acme Rockets", "acme-rockets")
        membership = db.session.execute(db.select(Membership)).scalar_one()
        assert (membership.org_id, membership.user.oidc_subject, membership.role) == (
            org.id,
            "ada",
            "owner",
        )
    dashboard = client.get("/orgs/acme-rockets/links")
    assert dashboard.status_code == 200
    assert "No short links yet" in dashboard.get_data(as_text=True)


def test_orgs_with_the_same_name_get_distinct_slugs(app, client, sign_in):
    sign_in("ada")
    create_org(client, "Acme")
    response = create_org(client, "ACME!")
    assert response.headers["Location"] == "/orgs/acme-2/links"
    with app.app_context():
        slugs = sorted(db.session.execute(db.select(Org.slug)).scalars())
    assert slugs == ["acme", "acme-2"]


def test_non_ascii_org_name_gets_a_url_safe_slug(client, sign_in):
    sign_in("ada")
    assert create_org(client, "Zürich Café").headers["Location"] == "/orgs/zurich-cafe/links"


def test_a_long_org_name_is_cut_to_a_slug_that_ends_in_a_letter(client, sign_in):
    sign_in("ada")
    # The 50-character cut lands right after the dash between the words.
    name = "a" * 49 + " rocket"
    assert create_org(client, name).headers["Location"] == f"/orgs/{'a' * 49}/links"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "Give the organisation a name."),
        ("   ", "Give the organisation a name."),
        ("x" * 101, "100 characters or fewer"),
    ],
)
def test_invalid_org_name_shows_an_inline_error_and_writes_nothing(
    app, client, sign_in, name, message
):
    sign_in("ada")
    response = create_org(client, name)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert f'id="name-error">{message}' in page or message in page
    assert 'aria-invalid="true"' in page
    with app.app_context():
        assert db.session.execute(db.select(db.func.count(Org.id))).scalar_one() == 0


def test_htmx_create_with_bad_input_gets_the_form_fragment(client, sign_in):
    sign_in("ada")
    response = create_org(client, "", **{"HX-Request": "true"})
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert page.lstrip().startswith("<form")
    assert "<html" not in page
    assert "HX-Request" in response.headers["Vary"]


def test_htmx_create_redirects_the_browser_to_the_dashboard(client, sign_in):
    sign_in("ada")
    response = create_org(client, "Acme", **{"HX-Request": "true"})
    assert response.status_code == 204
    assert response.headers["HX-Redirect"] == "/orgs/acme/links"


def test_create_org_without_csrf_token_is_refused(app, client, sign_in):
    sign_in("ada")
    response = client.post("/orgs", data={"name": "Acme"})
    assert response.status_code == 400
    with app.app_context():
        assert db.session.execute(db.select(db.func.count(Org.id))).scalar_one() == 0


def test_home_returns_to_the_last_used_org(client, sign_in):
    sign_in("ada")
    create_org(client, "First")
    create_org(client, "Second")
    client.get("/orgs/first/links")
    response = client.get("/")
    assert response.headers["Location"] == "/orgs/first/links"


def test_last_used_org_is_remembered_across_sign_ins(client, sign_in):
    sign_in("ada")
    create_org(client, "First")
    create_org(client, "Second")
    client.get("/orgs/first/links")
    client.post("/logout", data={"csrf_token": csrf_token(client)})
    sign_in("ada")
    assert client.get("/").headers["Location"] == "/orgs/first/links"


@pytest.mark.parametrize("hx", [False, True])
def test_non_member_gets_404_on_another_orgs_dashboard(app, client, sign_in, hx):
    sign_in("owner")
    create_org(client, "Secret Plans")
    client.post("/logout", data={"csrf_token": csrf_token(client)})
    sign_in("outsider")
    response = client.get("/orgs/secret-plans/links", headers={"HX-Request": "true"} if hx else {})
    assert response.status_code == 404
    assert "Secret Plans" not in response.get_data(as_text=True)


def test_unknown_org_and_foreign_org_look_the_same(client, sign_in):
    sign_in("owner")
    create_org(client, "Secret Plans")
    client.post("/logout", data={"csrf_token": csrf_token(client)})
    sign_in("outsider")
    foreign = client.get("/orgs/secret-plans/links")
    unknown = client.get("/orgs/no-such-org/links")
    assert foreign.status_code == unknown.status_code == 404
    assert foreign.get_data() == unknown.get_data()


def test_org_list_shows_only_my_orgs(client, sign_in):
    sign_in("owner")
    create_org(client, "Secret Plans")
    client.post("/logout", data={"csrf_token": csrf_token(client)})
    sign_in("outsider")
    assert "Secret Plans" not in client.get("/orgs").get_data(as_text=True)


@pytest.mark.parametrize("role", ["owner", "admin", "member"])
def test_every_member_sees_the_org_dashboard_and_outsiders_do_not(org_team, role):
    assert org_team[role].get("/orgs/acme/links").status_code == 200
    assert org_team["outsider"].get("/orgs/acme/links").status_code == 404


def test_the_last_used_org_is_remembered_by_a_cookie_not_a_database_write(app, client, sign_in):
    sign_in("ada")
    create_org(client, "First")
    with app.app_context(), db.engine.connect() as connection:
        before = [tuple(row) for row in connection.execute(db.text("SELECT * FROM users"))]

    response = client.get("/orgs/first/links")

    assert "linkdeck_last_org=first" in response.headers["Set-Cookie"]
    assert "HttpOnly" in response.headers["Set-Cookie"]
    with app.app_context(), db.engine.connect() as connection:
        after = [tuple(row) for row in connection.execute(db.text("SELECT * FROM users"))]
    assert after == before


def test_a_remembered_org_is_opened_only_for_its_members(signed_in_client):
    other = signed_in_client("bea")
    create_org(other, "Not Yours")
    ada = signed_in_client("ada")
    create_org(ada, "Mine")
    ada.set_cookie("linkdeck_last_org", "not-yours")
    assert ada.get("/").headers["Location"] == "/orgs"


def test_an_org_is_never_stored_without_its_owner(app, sign_in):
    from app.models import User
    from app.services.orgs import create_org as create_org_service

    sign_in("ada")
    with app.app_context():
        ada = db.session.execute(db.select(User).filter_by(oidc_subject="ada")).scalar_one()
        create_org_service(ada, "Half Done")
        # The rest of the request fails before its commit. On SQLite the slug's savepoint
        # may already have committed the org; if so, its owner must have gone with it.
        db.session.rollback()

    with app.app_context():
        kept = db.session.execute(db.select(Org).filter_by(name="Half Done")).scalars().all()
        for org in kept:
            roles = db.session.execute(
                db.select(Membership.role).filter_by(org_id=org.id)
            ).scalars()
            assert list(roles) == ["owner"]
