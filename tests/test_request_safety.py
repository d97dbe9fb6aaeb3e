"""Every route, from url_map: each change needs this session's CSRF token (X1), and opening a
page writes nothing to the database (X3), except sign-in and the redirect, which counts a
limited link's click and makes the day's visitor salt."""

import pytest

from app import create_app
from tests.conftest import TEST_SECRET_KEY, csrf_token
from tests.link_helpers import insert_links, link_row, update_row
from tests.org_helpers import (
    HX,
    fill_rule,
    pending_invitation,
    recorded_sql,
    routes,
    rule_arguments,
    snapshot,
    user_id,
)

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
# GETs that may write: the public redirect counts a limited link's click and makes the
# day's salt, sign-in keeps its state.
WRITING_GETS = {"redirects.follow", "auth.login", "auth.callback"}
CSRF_REFUSED = "CSRF"


def _routes() -> list[tuple[str, str, str]]:
    """(method, rule, endpoint) for every route the app has, read from a throwaway app."""
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": TEST_SECRET_KEY,
            "SQLALCHEMY_DATABASE_URI": "sqlite://",
            "OIDC_ISSUER": "http://127.0.0.1:9",
            "OIDC_CLIENT_ID": "routes",
            "OIDC_CLIENT_SECRET": "routes",
        }
    )
    return routes(app)


ROUTES = _routes()
CHANGING = [(method, rule) for method, rule, _ in ROUTES if method not in SAFE_METHODS]
PAGES = [(rule, endpoint) for method, rule, endpoint in ROUTES if method == "GET"]


@pytest.fixture
def team(app, org_team):
    """The `acme` team with the owner's link `keep-me`, a pending invitation, and a value
    for every path parameter any route has."""
    insert_links(app, "acme", "owner", ["keep-me"])
    invitation_id, token = pending_invitation(app, org_team["owner"])
    params = {
        "org_slug": "acme",
        "slug": "keep-me",
        "user_id": user_id(app, "member"),
        "invitation_id": invitation_id,
        "token": token,
        "filename": "app.js",
    }
    return org_team, params


def path_of(rule: str, params: dict) -> str:
    """The rule's path with fixture values; fails naming any parameter without one."""
    missing = [name for name in rule_arguments(rule) if name not in params]
    assert not missing, f"{rule}: no fixture value for {missing}; add one to `team`"
    return fill_rule(rule, params)


def test_the_route_lists_are_read_from_the_url_map(app):
    assert routes(app) == ROUTES
    assert len(CHANGING) > 15
    assert len(PAGES) > 15


def test_every_path_parameter_has_a_fixture_value(team):
    _, params = team
    for _, rule, _ in ROUTES:
        path_of(rule, params)


@pytest.mark.parametrize("hx", [False, True], ids=["page", "htmx"])
def test_every_change_without_a_csrf_token_is_refused_and_changes_nothing(app, team, hx):
    clients, params = team
    owner = clients["owner"]
    for method, rule in CHANGING:
        path = path_of(rule, params)
        before = snapshot(app)
        response = owner.open(path, method=method, headers=HX if hx else {})
        assert response.status_code == 400, (method, path)
        assert "The CSRF token is missing." in response.text, (method, path)
        assert snapshot(app) == before, (method, path)


@pytest.mark.parametrize("where", ["form", "header"])
@pytest.mark.parametrize("hx", [False, True], ids=["page", "htmx"])
def test_every_change_with_another_sessions_token_is_refused_and_changes_nothing(
    app, team, where, hx
):
    clients, params = team
    owner = clients["owner"]
    # A valid token, but of the admin's session: what a forged page could have got.
    foreign = csrf_token(clients["admin"])
    for method, rule in CHANGING:
        path = path_of(rule, params)
        headers = {**(HX if hx else {})}
        data = {}
        if where == "header":
            headers["X-CSRFToken"] = foreign
        else:
            data["csrf_token"] = foreign
        before = snapshot(app)
        response = owner.open(path, method=method, headers=headers, data=data)
        assert response.status_code == 400, (method, path)
        assert "The CSRF tokens do not match." in response.text, (method, path)
        assert snapshot(app) == before, (method, path)


@pytest.mark.parametrize(("method", "rule"), CHANGING, ids=[f"{m} {r}" for m, r in CHANGING])
def test_every_change_with_this_sessions_token_in_the_htmx_header_passes_csrf(team, method, rule):
    clients, params = team
    owner = clients["owner"]
    headers = {**HX, "X-CSRFToken": csrf_token(owner)}
    response = owner.open(path_of(rule, params), method=method, headers=headers)
    assert response.status_code != 400, response.text
    assert CSRF_REFUSED not in response.text


@pytest.mark.parametrize("hx", [False, True], ids=["page", "htmx"])
def test_opening_any_page_writes_nothing(app, team, hx):
    clients, params = team
    owner = clients["owner"]
    opened = 0
    for rule, endpoint in PAGES:
        path = path_of(rule, params)
        with recorded_sql(app) as sent:
            response = owner.get(path, headers=HX if hx else {})
            # Read and close, so a streamed body (a CSV, a static file) runs its queries here.
            response.get_data()
            response.close()
        assert response.status_code < 500, path
        if endpoint not in WRITING_GETS:
            writes = [each.sql for each in sent if each.writes]
            assert writes == [], f"GET {path} wrote: {writes}"
            opened += 1
    assert opened == len(PAGES) - len(WRITING_GETS)


def test_the_invitee_opening_their_invitation_writes_nothing(app, team, signed_in_client):
    # The owner above opens the invitation only to be refused; its invitee gets the page.
    _, params = team
    invitee = signed_in_client("pending", email="pending@example.com")
    with recorded_sql(app) as sent:
        response = invitee.get(f"/invitations/{params['token']}")
    assert response.status_code == 200
    assert "Accept invitation" in response.text
    assert [each.sql for each in sent if each.writes] == []


def test_the_listener_sees_the_count_a_limited_link_redirect_writes(app, team):
    # Clicks on other links are only spooled; a limited link is counted as it redirects.
    update_row(app, "keep-me", max_clicks=5)
    with recorded_sql(app) as sent:
        response = app.test_client().get("/keep-me")
    assert response.status_code == 302
    assert any("click_count" in each.sql for each in sent if each.writes)
    assert link_row(app, "keep-me").click_count == 1
