"""Hostile values in the org routes' paths, form fields and query strings: never a 500, never
a change, and a path value no org, link or row could have is a 404 that asks the database
nothing about it."""

import base64
from urllib.parse import quote

import pytest

from tests.conftest import csrf_token
from tests.link_helpers import create_link
from tests.org_helpers import (
    HX,
    fill_rule,
    pending_invitation,
    post_form,
    recorded_sql,
    routes,
    rule_arguments,
    simple_rule,
    snapshot,
    user_id,
)

# A path parameter's name -> values that no row could have.
BAD_PATH_VALUES = {
    "org_slug": ["ac\x00me", "acme\x00", "Ac me", "acme'--", "äcme", "a" * 65],
    "slug": ["keep\x00me", "keep-me\x00", "keep me", "kéep-me", "k" * 65],
    "user_id": ["99999999999999999999", str(2**31), str(2**63)],
    "invitation_id": ["99999999999999999999", str(2**31), str(2**63)],
}

# The form fields each org route reads, with values that would otherwise be accepted.
FORM_FIELDS = {
    ("POST", "/orgs"): {"name": "Rockets"},
    ("POST", "/orgs/<org_slug>/settings"): {"name": "Acme", "allowed_email_domain": "example.com"},
    ("POST", "/orgs/<org_slug>/delete"): {"confirm_name": "Acme"},
    ("POST", "/orgs/<org_slug>/invitations"): {"email": "new@example.com", "role": "member"},
    ("POST", "/orgs/<org_slug>/members/<user_id>/role"): {"role": "admin"},
    ("POST", "/orgs/<org_slug>/links"): {
        "url": "https://example.com/new",
        "slug": "brand-new",
        "title": "New",
        "expires_at": "2099-01-01T00:00",
        "max_clicks": "5",
    },
    ("POST", "/orgs/<org_slug>/links/<slug>"): {"url": "https://example.com/x", "title": "X"},
    ("PATCH", "/orgs/<org_slug>/links/<slug>"): {"url": "https://example.com/x", "title": "X"},
}

# The query parameters each org page reads.
QUERY_PARAMS = {
    "/orgs/<org_slug>/links": ["q", "status", "mine", "before"],
    "/orgs/<org_slug>/links/<slug>": ["range", "internal"],
    "/orgs/<org_slug>/links/<slug>/stats": ["range", "internal"],
}


def _cursor(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


HOSTILE_QUERY_VALUES = [
    "\x00",
    "sp\x00ring",
    "%",
    "\\",
    _cursor("2026-01-01T00:00:00+00:00|99999999999999999999"),
    _cursor("2026-01-01T00:00:00+00:00|1\x00"),
    _cursor("9999-12-31T23:59:59+00:00|-1"),
]


@pytest.fixture
def team(app, org_team):
    """The `acme` team with the owner's link `keep-me` and a pending invitation."""
    owner = org_team["owner"]
    create_link(owner, "acme", "keep-me", "https://example.com/keep")
    invitation_id, _ = pending_invitation(app, owner)
    params = {
        "org_slug": "acme",
        "slug": "keep-me",
        "user_id": str(user_id(app, "member")),
        "invitation_id": str(invitation_id),
    }
    return owner, params


def org_rules(app) -> list[tuple[str, str]]:
    """(method, rule) for every route under /orgs/<org_slug>."""
    return [(method, rule) for method, rule, _ in routes(app, "/orgs/<org_slug>")]


def send(client, method: str, path: str, data: dict | None = None, headers: dict | None = None):
    """Send as the page would, with a valid CSRF token in the header."""
    headers = {**(headers or {}), "X-CSRFToken": csrf_token(client)}
    return client.open(path, method=method, data=data or {}, headers=headers)


def test_the_tables_name_every_org_route_that_reads_input(app):
    rules = {(method, simple_rule(rule)) for method, rule in org_rules(app)}
    assert set(FORM_FIELDS) - {("POST", "/orgs")} <= rules
    assert {("GET", rule) for rule in QUERY_PARAMS} <= rules


@pytest.mark.parametrize("shape", ["page", "htmx"])
def test_every_org_route_answers_404_to_a_path_value_no_row_can_have(app, team, shape):
    owner, params = team
    checked = 0
    for method, rule in org_rules(app):
        names = rule_arguments(rule)
        form = FORM_FIELDS.get((method, simple_rule(rule)), {})
        for name in names:
            for bad in BAD_PATH_VALUES[name]:
                path = fill_rule(rule, {**params, name: bad})
                before = snapshot(app)
                with recorded_sql(app) as sent:
                    response = send(owner, method, path, form, HX if shape == "htmx" else None)
                # The click-count poll answers a link it cannot find with a quiet 204.
                expected = 204 if rule.endswith("/clicks") and name == "slug" else 404
                assert response.status_code == expected, (method, path, response.status_code)
                assert snapshot(app) == before, (method, path)
                # Refused before any query: the value never reaches the database.
                for form_of_it in {bad, bad.lower()}:
                    escaped = repr(form_of_it)[1:-1]
                    assert not any(escaped in each.parameters for each in sent), (method, path)
                checked += 1
    assert checked > 100


def test_nul_in_the_org_slug_is_not_looked_up(app, team):
    owner, _ = team
    with recorded_sql(app) as sent:
        response = owner.get("/orgs/ac%00me/members")
    assert response.status_code == 404
    assert "No such organisation." in response.get_data(as_text=True)
    assert not any("ac\\x00me" in each.parameters for each in sent)


@pytest.mark.parametrize(
    ("method", "rule", "field"),
    [(method, rule, field) for (method, rule), form in FORM_FIELDS.items() for field in form],
)
@pytest.mark.parametrize("shape", ["page", "htmx"])
def test_nul_in_a_form_field_is_refused_without_a_change(app, team, method, rule, field, shape):
    owner, params = team
    form = FORM_FIELDS[(method, rule)]
    before = snapshot(app)
    response = send(
        owner,
        method,
        fill_rule(rule, params),
        {**form, field: f"{form[field][:2]}\x00{form[field][2:]}"},
        HX if shape == "htmx" else None,
    )
    assert response.status_code == 422, response.get_data(as_text=True)
    assert snapshot(app) == before


@pytest.mark.parametrize(
    ("rule", "param"), [(rule, param) for rule, names in QUERY_PARAMS.items() for param in names]
)
@pytest.mark.parametrize("shape", ["page", "htmx"])
def test_hostile_query_values_are_never_a_server_error(app, team, rule, param, shape):
    owner, params = team
    path = fill_rule(rule, params)
    before = snapshot(app)
    for value in HOSTILE_QUERY_VALUES:
        response = owner.get(
            path, query_string={param: value}, headers=HX if shape == "htmx" else None
        )
        assert response.status_code < 500, (param, value)
        assert "\x00" not in response.get_data(as_text=True), (param, value)
    assert snapshot(app) == before


def test_stats_redirect_passes_on_only_the_stats_parameters(team):
    owner, _ = team
    response = owner.get(
        "/orgs/acme/links/keep-me/stats",
        query_string={"range": "7d", "slug": "other", "_external": "1", "_scheme": "javascript"},
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "/orgs/acme/links/keep-me?range=7d"


@pytest.mark.parametrize("path", ["/orgs", "/orgs/acme/settings"])
@pytest.mark.parametrize("shape", ["page", "htmx"])
def test_control_character_in_an_org_name_is_refused_next_to_the_field(app, team, path, shape):
    owner, _ = team
    before = snapshot(app)
    for name in ["Ac\x00me", "Acme\x07", "Acme\x7f", "Ac\u202eme"]:
        response = post_form(
            owner,
            path,
            {"name": name, "allowed_email_domain": ""},
            HX if shape == "htmx" else None,
        )
        page = response.get_data(as_text=True)
        assert response.status_code == 422, name
        assert (
            'id="name-error">The name contains line breaks, control or invisible characters; '
            "remove them." in page
        )
        assert 'aria-invalid="true"' in page
        assert ("<html" in page) == (shape == "page")
    assert snapshot(app) == before


def test_an_unreadable_last_org_cookie_is_ignored(team):
    owner, _ = team
    owner.set_cookie("linkdeck_last_org", "ac\x00me")
    response = owner.get("/")
    assert response.status_code == 302
    assert response.headers["Location"] == "/orgs"


@pytest.mark.parametrize("slug", ["keep\x00me", "keep me", "kéep"])
def test_a_public_slug_no_link_can_have_is_unknown(app, team, slug):
    before = snapshot(app)
    response = app.test_client().get(f"/{quote(slug)}")
    assert response.status_code == 404
    assert snapshot(app) == before
