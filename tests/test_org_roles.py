"""The role matrix: every route under /orgs/<org_slug>, as a full page and as an htmx fragment,
against an outsider, a member, an admin and an owner, with the status DESIGN.md section 4
gives each, and the whole database unchanged whenever one is refused."""

from dataclasses import dataclass

import pytest

from tests.conftest import csrf_token
from tests.link_helpers import insert_links, update_row
from tests.org_helpers import HX, delete, pending_invitation, post_form, routes, snapshot, user_id

ROLES = ("outsider", "member", "admin", "owner")
ORG_PREFIX = "/orgs/<org_slug>"
USER_ID = "<int(max=2147483647):user_id>"
INVITATION_ID = "<int(max=2147483647):invitation_id>"

# The link of each kind in the fixture: created by the owner or by the member, live or not.
OWNERS_LINK = "owners-link"
MEMBERS_LINK = "members-link"
OWNERS_OFF = "owners-off"
MEMBERS_OFF = "members-off"


@dataclass(frozen=True)
class Case:
    """One request and what each role gets: a status, or (page status, htmx status)."""

    method: str
    rule: str
    path: str
    expected: dict
    form: dict | None = None

    def status(self, role: str, hx: bool) -> int:
        expected = self.expected[role]
        if isinstance(expected, tuple):
            return expected[1] if hx else expected[0]
        return expected


def roles(member, admin, owner) -> dict:
    """Expected statuses per role; an outsider always gets 404."""
    return {"outsider": 404, "member": member, "admin": admin, "owner": owner}


EVERYONE = roles(200, 200, 200)
# Full page 302 back to where the change is shown; htmx gets the fragment.
CHANGED = (302, 200)
LINK_RULE = f"{ORG_PREFIX}/links/<slug>"
NEW_LINK = {"url": "https://example.com/new", "slug": "brand-new"}
LINK_EDIT = {"url": "https://example.com/changed", "title": "Changed"}

MATRIX = [
    # The links dashboard and exports: every member sees everything.
    Case("GET", f"{ORG_PREFIX}/links", "/orgs/acme/links", EVERYONE),
    Case("POST", f"{ORG_PREFIX}/links", "/orgs/acme/links", roles(*[(302, 201)] * 3), NEW_LINK),
    Case("GET", f"{ORG_PREFIX}/links.csv", "/orgs/acme/links.csv", EVERYONE),
    Case("GET", LINK_RULE, f"/orgs/acme/links/{OWNERS_LINK}", EVERYONE),
    Case(
        "GET", f"{LINK_RULE}/stats", f"/orgs/acme/links/{OWNERS_LINK}/stats", roles(*[CHANGED] * 3)
    ),
    Case("GET", f"{LINK_RULE}/clicks", f"/orgs/acme/links/{OWNERS_LINK}/clicks", EVERYONE),
    Case("GET", f"{LINK_RULE}/qr.svg", f"/orgs/acme/links/{OWNERS_LINK}/qr.svg", EVERYONE),
    Case("GET", f"{LINK_RULE}/clicks.csv", f"/orgs/acme/links/{OWNERS_LINK}/clicks.csv", EVERYONE),
    # Editing, deactivating and reactivating: one's own links, or anyone's for admins.
    Case("GET", f"{LINK_RULE}/edit", f"/orgs/acme/links/{OWNERS_LINK}/edit", roles(403, 200, 200)),
    Case("GET", f"{LINK_RULE}/edit", f"/orgs/acme/links/{MEMBERS_LINK}/edit", EVERYONE),
    Case(
        "POST",
        LINK_RULE,
        f"/orgs/acme/links/{OWNERS_LINK}",
        roles(403, CHANGED, CHANGED),
        LINK_EDIT,
    ),
    Case("POST", LINK_RULE, f"/orgs/acme/links/{MEMBERS_LINK}", roles(*[CHANGED] * 3), LINK_EDIT),
    Case(
        "PATCH",
        LINK_RULE,
        f"/orgs/acme/links/{OWNERS_LINK}",
        roles(403, CHANGED, CHANGED),
        LINK_EDIT,
    ),
    Case("PATCH", LINK_RULE, f"/orgs/acme/links/{MEMBERS_LINK}", roles(*[CHANGED] * 3), LINK_EDIT),
    Case(
        "POST",
        f"{LINK_RULE}/deactivate",
        f"/orgs/acme/links/{OWNERS_LINK}/deactivate",
        roles(403, CHANGED, CHANGED),
    ),
    Case(
        "POST",
        f"{LINK_RULE}/deactivate",
        f"/orgs/acme/links/{MEMBERS_LINK}/deactivate",
        roles(*[CHANGED] * 3),
    ),
    Case(
        "POST",
        f"{LINK_RULE}/activate",
        f"/orgs/acme/links/{OWNERS_OFF}/activate",
        roles(403, CHANGED, CHANGED),
    ),
    Case(
        "POST",
        f"{LINK_RULE}/activate",
        f"/orgs/acme/links/{MEMBERS_OFF}/activate",
        roles(*[CHANGED] * 3),
    ),
    # Deleting needs an admin, even for one's own link; the page is sent on with a 303.
    Case(
        "DELETE", LINK_RULE, f"/orgs/acme/links/{OWNERS_LINK}", roles(403, (303, 200), (303, 200))
    ),
    Case(
        "DELETE", LINK_RULE, f"/orgs/acme/links/{MEMBERS_LINK}", roles(403, (303, 200), (303, 200))
    ),
    # The same, without JavaScript: a page that asks, and the form it sends.
    Case(
        "GET",
        f"{LINK_RULE}/delete",
        f"/orgs/acme/links/{MEMBERS_LINK}/delete",
        roles(403, 200, 200),
    ),
    Case(
        "POST",
        f"{LINK_RULE}/delete",
        f"/orgs/acme/links/{MEMBERS_LINK}/delete",
        roles(403, 303, 303),
    ),
    # Members and invitations.
    Case("GET", f"{ORG_PREFIX}/members", "/orgs/acme/members", EVERYONE),
    Case(
        "POST",
        f"{ORG_PREFIX}/members/{USER_ID}/role",
        "/orgs/acme/members/{member_id}/role",
        roles(403, CHANGED, CHANGED),
        {"role": "admin"},
    ),
    Case(
        "POST",
        f"{ORG_PREFIX}/members/{USER_ID}/role",
        "/orgs/acme/members/{owner_id}/role",
        # The owner is the last one: demoting them is a conflict, not a permission question.
        roles(403, 403, 409),
        {"role": "admin"},
    ),
    Case(
        "DELETE",
        f"{ORG_PREFIX}/members/{USER_ID}",
        "/orgs/acme/members/{member_id}",
        roles(403, CHANGED, CHANGED),
    ),
    Case(
        "POST",
        f"{ORG_PREFIX}/members/{USER_ID}/remove",
        "/orgs/acme/members/{member_id}/remove",
        roles(403, CHANGED, CHANGED),
    ),
    Case(
        "POST",
        f"{ORG_PREFIX}/members/{USER_ID}/remove",
        "/orgs/acme/members/{owner_id}/remove",
        roles(403, 403, 409),
    ),
    Case("POST", f"{ORG_PREFIX}/leave", "/orgs/acme/leave", roles((302, 204), (302, 204), 409)),
    Case(
        "POST",
        f"{ORG_PREFIX}/invitations",
        "/orgs/acme/invitations",
        roles(403, 200, 200),
        {"email": "new@example.com", "role": "member"},
    ),
    Case(
        "POST",
        f"{ORG_PREFIX}/invitations",
        "/orgs/acme/invitations",
        roles(403, 403, 200),
        {"email": "boss@example.com", "role": "owner"},
    ),
    Case(
        "POST",
        f"{ORG_PREFIX}/invitations/{INVITATION_ID}/revoke",
        "/orgs/acme/invitations/{invitation_id}/revoke",
        roles(403, CHANGED, CHANGED),
    ),
    # Administration: settings and deleting the org for owners, the audit log for admins too.
    Case("GET", f"{ORG_PREFIX}/settings", "/orgs/acme/settings", roles(403, 403, 200)),
    Case(
        "POST",
        f"{ORG_PREFIX}/settings",
        "/orgs/acme/settings",
        roles(403, 403, CHANGED),
        {
            "name": "Renamed",
            "allowed_email_domain": "example.com",
        },  # the owner's verified email domain
    ),
    Case(
        "POST",
        f"{ORG_PREFIX}/delete",
        "/orgs/acme/delete",
        roles(403, 403, (302, 204)),
        {"confirm_name": "Acme"},
    ),
    Case("GET", f"{ORG_PREFIX}/audit", "/orgs/acme/audit", roles(403, 200, 200)),
]

# Responses that are files or plain text rather than HTML.
NOT_HTML = ("/links.csv", "/qr.svg", "/clicks.csv", "/clicks")


@pytest.fixture
def team(app, org_team):
    """The `acme` team with a live and a deactivated link each of the owner and the member,
    one pending invitation, and the ids the matrix paths need."""
    insert_links(app, "acme", "owner", [OWNERS_LINK, OWNERS_OFF])
    insert_links(app, "acme", "member", [MEMBERS_LINK, MEMBERS_OFF])
    for slug in (OWNERS_OFF, MEMBERS_OFF):
        update_row(app, slug, is_active=False)
    invitation_id, _ = pending_invitation(app, org_team["owner"])
    ids = {
        "member_id": user_id(app, "member"),
        "owner_id": user_id(app, "owner"),
        "invitation_id": invitation_id,
    }
    return org_team, ids


def send(client, method: str, path: str, form, hx: bool):
    """Send as the page would: forms with their CSRF field, DELETE with the header."""
    headers = HX if hx else {}
    if method == "GET":
        return client.get(path, headers=headers)
    if method == "DELETE":
        return delete(client, path, headers)
    if method == "PATCH":
        data = {**(form or {}), "csrf_token": csrf_token(client)}
        return client.patch(path, data=data, headers=headers)
    return post_form(client, path, form, headers)


def _case_id(case: Case) -> str:
    return f"{case.method} {case.path} {case.form.get('role', '') if case.form else ''}".strip()


@pytest.mark.parametrize("hx", [False, True], ids=["page", "htmx"])
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("case", MATRIX, ids=[_case_id(case) for case in MATRIX])
def test_role_matrix(app, team, case, role, hx):
    clients, ids = team
    before = snapshot(app)
    response = send(clients[role], case.method, case.path.format(**ids), case.form, hx)
    body = response.get_data(as_text=True)
    assert response.status_code == case.status(role, hx), body[:300]
    if response.status_code >= 400:
        assert snapshot(app) == before, "a refused request changed the database"
    if response.status_code == 404:
        # Not a member: nothing says the org exists.
        assert "Acme" not in body
    if case.method == "GET" and response.status_code == 200:
        assert snapshot(app) == before, "a GET wrote to the database"
    # A redirect's body is never swapped (the browser's fetch follows it), so only others count.
    if hx and not 300 <= response.status_code < 400:
        assert "<html" not in body, "an htmx request got a whole page"
    elif response.status_code in (200, 403, 404, 409) and not case.path.endswith(NOT_HTML):
        assert "<html" in body


def test_every_org_route_is_in_the_matrix(app):
    covered = {(case.method, case.rule) for case in MATRIX}
    org_routes = {(method, rule) for method, rule, _ in routes(app, ORG_PREFIX)}
    assert org_routes - covered == set(), "org routes missing from the role matrix"
    assert covered - org_routes == set(), "matrix rows for routes that no longer exist"
