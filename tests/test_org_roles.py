"""The role matrix: every org-scoped route of the org area against an outsider, a member, an
admin and an owner, with the status each gets and no rows changed when refused."""

import pytest

from app.extensions import db
from app.models import Invitation
from tests.org_helpers import HX, delete, post_form, snapshot, user_id

ROLES = ("outsider", "member", "admin", "owner")


def _expect(outsider, member, admin, owner):
    return dict(zip(ROLES, (outsider, member, admin, owner), strict=True))


# (method, URL rule, concrete path, form, htmx?, expected status per role)
MATRIX = [
    ("GET", "/orgs/<org_slug>/links", "/orgs/acme/links", None, False, _expect(404, 200, 200, 200)),
    ("GET", "/orgs/<org_slug>/links", "/orgs/acme/links", None, True, _expect(404, 200, 200, 200)),
    (
        "GET",
        "/orgs/<org_slug>/members",
        "/orgs/acme/members",
        None,
        False,
        _expect(404, 200, 200, 200),
    ),
    (
        "GET",
        "/orgs/<org_slug>/members",
        "/orgs/acme/members",
        None,
        True,
        _expect(404, 200, 200, 200),
    ),
    (
        "POST",
        "/orgs/<org_slug>/members/<int:user_id>/role",
        "/orgs/acme/members/{member_id}/role",
        {"role": "admin"},
        True,
        _expect(404, 403, 200, 200),
    ),
    (
        "POST",
        "/orgs/<org_slug>/members/<int:user_id>/role",
        "/orgs/acme/members/{owner_id}/role",
        {"role": "admin"},
        True,
        # The owner is the last one: demoting them is a conflict, not a permission question.
        _expect(404, 403, 403, 409),
    ),
    (
        "DELETE",
        "/orgs/<org_slug>/members/<int:user_id>",
        "/orgs/acme/members/{member_id}",
        None,
        True,
        _expect(404, 403, 200, 200),
    ),
    (
        "POST",
        "/orgs/<org_slug>/members/<int:user_id>/remove",
        "/orgs/acme/members/{member_id}/remove",
        {},
        False,
        _expect(404, 403, 302, 302),
    ),
    ("POST", "/orgs/<org_slug>/leave", "/orgs/acme/leave", {}, False, _expect(404, 302, 302, 409)),
    (
        "POST",
        "/orgs/<org_slug>/invitations",
        "/orgs/acme/invitations",
        {"email": "new@example.com", "role": "member"},
        True,
        _expect(404, 403, 200, 200),
    ),
    (
        "POST",
        "/orgs/<org_slug>/invitations/<int:invitation_id>/revoke",
        "/orgs/acme/invitations/{invitation_id}/revoke",
        {},
        True,
        _expect(404, 403, 200, 200),
    ),
    (
        "GET",
        "/orgs/<org_slug>/settings",
        "/orgs/acme/settings",
        None,
        False,
        _expect(404, 403, 200, 200),
    ),
    (
        "POST",
        "/orgs/<org_slug>/settings",
        "/orgs/acme/settings",
        {"name": "Renamed", "allowed_email_domain": "acme.com"},
        False,
        _expect(404, 403, 403, 302),
    ),
    (
        "POST",
        "/orgs/<org_slug>/delete",
        "/orgs/acme/delete",
        {"confirm_name": "Acme"},
        False,
        _expect(404, 403, 403, 302),
    ),
    ("GET", "/orgs/<org_slug>/audit", "/orgs/acme/audit", None, False, _expect(404, 403, 200, 200)),
]


@pytest.fixture
def team_with_invitation(app, org_team):
    """The `acme` team plus one pending invitation, and the ids the matrix paths need."""
    post_form(
        org_team["owner"],
        "/orgs/acme/invitations",
        {"email": "pending@example.com", "role": "member"},
    )
    with app.app_context():
        invitation_id = db.session.execute(db.select(Invitation.id)).scalar_one()
    ids = {
        "member_id": user_id(app, "member"),
        "owner_id": user_id(app, "owner"),
        "invitation_id": invitation_id,
    }
    return org_team, ids


def send(client, method: str, path: str, form, hx: bool):
    headers = HX if hx else {}
    if method == "GET":
        return client.get(path, headers=headers)
    if method == "DELETE":
        return delete(client, path, headers)
    return post_form(client, path, form, headers)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(
    ("method", "rule", "path", "form", "hx", "expected"),
    MATRIX,
    ids=[f"{m} {p}{' hx' if hx else ''}" for m, _, p, _, hx, _ in MATRIX],
)
def test_role_matrix(app, team_with_invitation, role, method, rule, path, form, hx, expected):
    team, ids = team_with_invitation
    before = snapshot(app)
    response = send(team[role], method, path.format(**ids), form, hx)
    assert response.status_code == expected[role]
    if response.status_code >= 400:
        assert snapshot(app) == before, "a refused request changed the database"
    if response.status_code == 404:
        # Not a member: nothing says the org exists.
        assert "Acme" not in response.get_data(as_text=True)
    if method == "GET" and response.status_code == 200:
        assert snapshot(app) == before or path.endswith("/links"), "a GET wrote to the database"


def test_every_org_route_is_in_the_matrix(app):
    covered = {(method, rule) for method, rule, *_ in MATRIX}
    org_routes = {
        (method, rule.rule)
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith("orgs.") and "<org_slug>" in rule.rule
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    assert org_routes - covered == set()
