"""The links dashboard: create, list, search, page, edit, deactivate and delete, for each role,
in both shapes (htmx fragment and full page)."""

import re
from datetime import UTC, datetime, timedelta

import pytest

from app.extensions import db
from app.models import Link, LinkChange, Org, utcnow
from app.services import slugs as slug_service
from tests.conftest import create_org_as, csrf_token, run_at_once
from tests.link_helpers import (
    HX,
    create_link,
    dashboard_path,
    insert_links,
    link_count,
    link_row,
    mutate,
    post_link,
    shipped,
    update_row,
)

# Creating links ---------------------------------------------------------------------------


def test_creating_a_link_without_javascript_returns_to_the_dashboard_with_the_new_row(
    app, owner, acme
):
    response = post_link(owner, acme, "https://Example.com/launch?x=1", title="Launch")
    assert response.status_code == 302
    assert response.headers["Location"] == dashboard_path(acme)
    assert "HX-Request" in response.headers["Vary"]

    with app.app_context():
        link = db.session.execute(db.select(Link)).scalar_one()
        assert re.fullmatch(r"[0-9a-z]{8}", link.slug)
        assert link.destination == "https://example.com/launch?x=1"
        assert (link.title, link.created_by.oidc_subject, link.is_active) == (
            "Launch",
            "owner",
            True,
        )
        slug = link.slug

    page = owner.get(dashboard_path(acme)).get_data(as_text=True)
    assert f'id="link-{slug}"' in page
    assert f'data-copy="https://go.acme.test/{slug}"' in page
    assert "https://<strong>example.com</strong>/launch?x=1" in page
    assert "Launch" in page
    assert "Owner" in page
    assert "Active" in page
    assert f"Created https://go.acme.test/{slug}" in page
    assert "No short links yet" not in page


def test_creating_a_link_with_htmx_returns_a_fresh_form_and_the_new_row(app, owner, acme):
    response = post_link(owner, acme, "https://example.com/a", slug="Spring-Launch", htmx=True)
    assert response.status_code == 201
    assert "HX-Request" in response.headers["Vary"]
    body = response.get_data(as_text=True)
    assert "<html" not in body
    assert body.lstrip().startswith('<form id="create-link-form"')
    assert 'value=""' in body
    assert 'data-copy="https://go.acme.test/spring-launch"' in body
    assert '<template hx type="partial" hx-target="#links-body" hx-swap="afterbegin">' in body
    assert 'id="link-spring-launch"' in body
    assert link_row(app, "spring-launch").destination == "https://example.com/a"


def test_expiry_and_click_limit_are_stored(app, owner, acme):
    expires = (utcnow() + timedelta(days=3)).replace(microsecond=0)
    create_link(
        owner,
        acme,
        "timed",
        expires_at=expires.strftime("%Y-%m-%dT%H:%M:%S"),
        max_clicks="100",
    )
    link = link_row(app, "timed")
    assert (link.expires_at, link.max_clicks) == (expires, 100)


@pytest.fixture
def without_short_base_url(app_config):
    app_config["SHORT_BASE_URL"] = ""


def test_short_urls_use_the_redirect_route_when_no_short_base_url_is_set(
    without_short_base_url, signed_in_client
):
    client = signed_in_client("solo")
    org = create_org_as(client, "Solo")
    create_link(client, org, "solo-link")
    page = client.get(dashboard_path(org)).get_data(as_text=True)
    assert 'data-copy="http://localhost/solo-link"' in page


# Security checklist section 11, items 1 to 7 (the validator's own tests cover more forms).
BAD_DESTINATIONS = [
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    "java\tscript:alert(1)",
    "\x00javascript:alert(1)",
    "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
    "vbscript:msgbox(1)",
    "file:///etc/passwd",
    "https://ok.example/a\r\nSet-Cookie: pwn=1",
    "https://ok.example/\u202egnp.exe",
    "https://ok.example/\u0000",
    "https://a.example/" + "a" * 2100,
    "//evil.example",
    "/admin",
    "https:evil.example",
    "example.com",
    "http://",
    "https://exa mple.com",
    "https://GO.ACME.TEST./x",
    "https://\uff47\uff4f.acme.test/x",
    "https://www.go.acme.test/x",
    "http://localhost/orgs",
    "http://2130706433/",
    "http://0x7f.1/",
    "http://[::ffff:7f00:1]/",
    "http://169.254.169.254/",
    "http://localhost./",
    "https://google.com@evil.example/",
    "https://p\u0430ypal.com/",
    "https://xn--pypal-4ve.com/",
]


@pytest.mark.parametrize("url", BAD_DESTINATIONS, ids=repr)
@pytest.mark.parametrize("htmx", [False, True], ids=["page", "htmx"])
def test_bad_destinations_are_refused_next_to_the_field_and_write_nothing(
    app, owner, acme, url, htmx
):
    response = post_link(owner, acme, url, htmx=htmx)
    assert response.status_code == 422
    body = response.get_data(as_text=True)
    assert '<small class="field-error" id="url-error">' in body
    assert 'aria-invalid="true"' in body
    assert ("<html" in body) is not htmx
    assert link_count(app) == 0


@pytest.mark.parametrize(
    "slug",
    [
        "login",
        "LOGIN",
        "static",
        ".well-known",
        "favicon.ico",
        "orgs",
        "healthz",
        "a/b",
        "a%2Fb",
        "\uff41\uff42\uff43",
        "abc\u202e",
        '" onmouseover=alert(1) x="',
        "a" * 65,
        "ab",
    ],
    ids=repr,
)
def test_bad_custom_slugs_are_refused_next_to_the_field(app, owner, acme, slug):
    response = post_link(owner, acme, slug=slug, htmx=True)
    assert response.status_code == 422
    body = response.get_data(as_text=True)
    assert '<small class="field-error" id="slug-error">' in body
    assert '" onmouseover' not in body
    assert link_count(app) == 0


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("title", "x" * 201),
        ("title", "line\nbreak"),
        ("expires_at", "yesterday"),
        ("expires_at", "2001-01-01T00:00"),
        ("max_clicks", "0"),
        ("max_clicks", "-1"),
        ("max_clicks", "1e309"),
        ("max_clicks", "99999999999"),
    ],
)
def test_bad_optional_fields_are_refused_next_to_the_field(app, owner, acme, field, value):
    response = post_link(owner, acme, **{field: value})
    assert response.status_code == 422
    assert f'id="{field}-error"' in response.get_data(as_text=True)
    assert link_count(app) == 0


def test_a_taken_slug_is_a_conflict_even_from_another_org_and_in_another_case(
    app, owner, acme, signed_in_client
):
    create_link(owner, acme, "promo")
    rival = signed_in_client("rival")
    rival_org = create_org_as(rival, "Rival")
    response = post_link(rival, rival_org, slug="PROMO", htmx=True)
    assert response.status_code == 409
    body = response.get_data(as_text=True)
    assert "already taken" in body
    assert 'id="slug-error"' in body
    assert link_count(app) == 1


def test_a_deleted_slug_is_retired_for_everyone(app, org_team, acme):
    create_link(org_team["owner"], acme, "launch")
    assert (
        mutate(org_team["admin"], "DELETE", f"/orgs/{acme}/links/launch", acme).status_code == 200
    )
    response = post_link(org_team["owner"], acme, slug="launch")
    assert response.status_code == 409
    assert "retired" in response.get_data(as_text=True)
    # Nor can another org pick it up and catch the old link's traffic.
    outsider = org_team["outsider"]
    other_org = create_org_as(outsider, "Elsewhere")
    response = post_link(outsider, other_org, slug="launch")
    assert response.status_code == 409
    assert "retired" in response.get_data(as_text=True)
    assert link_count(app) == 1
    assert outsider.get("/launch").status_code == 410


def test_random_slug_collisions_are_retried(app, owner, acme, monkeypatch):
    create_link(owner, acme, "aaaaaaaa")
    proposals = iter(["aaaaaaaa", "aaaaaaaa", "bbbbbbbb"])
    calls = []

    def generate():
        calls.append(1)
        return next(proposals)

    monkeypatch.setattr(slug_service, "generate_slug", generate)
    response = post_link(owner, acme, "https://example.com/second")
    assert response.status_code == 302
    assert len(calls) == 3
    assert link_row(app, "bbbbbbbb").destination == "https://example.com/second"
    assert link_count(app) == 2


def test_giving_up_on_random_slugs_answers_503_and_writes_nothing(app, owner, acme, monkeypatch):
    create_link(owner, acme, "aaaaaaaa")
    monkeypatch.setattr(slug_service, "generate_slug", lambda: "aaaaaaaa")
    response = post_link(owner, acme, "https://example.com/second", htmx=True)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    # An alert, not an error under the custom slug field the person left blank.
    assert response.headers["HX-Retarget"] == "#alerts"
    body = response.get_data(as_text=True)
    assert "Could not pick a free short link just now; please try again." in body
    assert 'id="slug-error"' not in body
    assert link_count(app) == 1


def test_two_people_racing_for_one_slug_leave_exactly_one_link(app, org_team, acme, postgres_only):
    clients = [org_team["owner"], org_team["member"]]
    tokens = [csrf_token(client, dashboard_path(acme)) for client in clients]

    def create(client, token):
        data = {"url": "https://example.com/race", "slug": "launch", "csrf_token": token}
        return lambda: client.post(dashboard_path(acme), data=data).status_code

    statuses = run_at_once(*(create(c, t) for c, t in zip(clients, tokens, strict=True)))
    assert sorted(statuses) == [302, 409]
    assert link_count(app) == 1


def test_deleting_and_deactivating_at_once_ends_deleted_without_errors(
    app, org_team, acme, postgres_only
):
    create_link(org_team["owner"], acme, "contested")
    actions = [
        ("delete", org_team["admin"], "DELETE", f"/orgs/{acme}/links/contested"),
        ("deactivate", org_team["owner"], "POST", f"/orgs/{acme}/links/contested/deactivate"),
    ]
    tokens = [csrf_token(client, dashboard_path(acme)) for _, client, _, _ in actions]

    def act(client, method, path, token):
        headers = {**HX, "X-CSRFToken": token}
        return lambda: client.open(path, method=method, headers=headers).status_code

    delete_status, deactivate_status = run_at_once(
        *(act(*action[1:], token) for action, token in zip(actions, tokens, strict=True))
    )
    statuses = {"delete": delete_status, "deactivate": deactivate_status}
    assert statuses["delete"] == 200
    assert statuses["deactivate"] in (200, 404)
    assert link_row(app, "contested").deleted_at is not None
    assert org_team["owner"].get("/contested").status_code == 410


def test_private_destinations_are_allowed_once_the_org_turns_them_on(app, owner, acme):
    assert post_link(owner, acme, "http://intranet/wiki").status_code == 422
    with app.app_context():
        db.session.execute(
            db.update(Org).filter_by(slug=acme).values(allow_private_destinations=True)
        )
        db.session.commit()
    create_link(owner, acme, "wiki", "http://intranet/wiki")
    create_link(owner, acme, "nas", "http://10.0.0.5/")
    assert link_row(app, "wiki").destination == "http://intranet/wiki"


def test_create_without_a_csrf_token_is_refused(app, owner, acme):
    response = owner.post(dashboard_path(acme), data={"url": "https://example.com/"})
    assert response.status_code == 400
    assert link_count(app) == 0


def test_a_huge_body_is_refused(app, owner, acme):
    response = owner.post(
        dashboard_path(acme),
        data={"url": "https://example.com/", "title": "x" * (2 * 1024 * 1024)},
    )
    assert response.status_code == 413
    assert link_count(app) == 0


# The list ---------------------------------------------------------------------------------


def test_empty_dashboard_says_what_to_do(owner, acme):
    page = owner.get(dashboard_path(acme)).get_data(as_text=True)
    assert "No short links yet. Paste a long address into the form above" in page


def test_dashboard_lists_only_this_orgs_live_links_newest_first(app, owner, acme, signed_in_client):
    insert_links(app, acme, "owner", ["first", "second", "third"])
    rival = signed_in_client("rival")
    rival_org = create_org_as(rival, "Rival")
    insert_links(app, rival_org, "rival", ["theirs"])
    update_row(app, "second", deleted_at=utcnow())

    page = owner.get(dashboard_path(acme)).get_data(as_text=True)
    assert re.findall(r'<tr id="link-([a-z0-9-]+)"', page) == ["third", "first"]


@pytest.mark.parametrize(
    ("query", "found"),
    [("alp", ["alpha"]), ("DOCS.example", ["beta"]), ("quarterly", ["gamma"]), ("100%", [])],
)
def test_search_matches_slug_destination_and_title_in_both_shapes(app, owner, acme, query, found):
    insert_links(app, acme, "owner", ["alpha"])
    insert_links(app, acme, "owner", ["beta"], destination="https://docs.example/x")
    insert_links(app, acme, "owner", ["gamma"], title="Quarterly report")
    for headers in ({}, HX):
        response = owner.get(dashboard_path(acme), query_string={"q": query}, headers=headers)
        body = response.get_data(as_text=True)
        assert "HX-Request" in response.headers["Vary"]
        assert ("<html" in body) is not bool(headers)
        assert re.findall(r'<tr id="link-([a-z0-9-]+)"', body) == found
    if not found:
        assert "No links match" in body


def test_search_never_shows_another_orgs_links(app, owner, acme, signed_in_client):
    rival = signed_in_client("rival")
    rival_org = create_org_as(rival, "Rival")
    insert_links(app, rival_org, "rival", ["secret-1", "secret-2"], title="secret")
    insert_links(app, acme, "owner", ["our-secret"], title="secret")
    response = owner.get(dashboard_path(acme), query_string={"q": "secret"}, headers=HX)
    body = response.get_data(as_text=True)
    assert re.findall(r'<tr id="link-([a-z0-9-]+)"', body) == ["our-secret"]
    assert "secret-1" not in body
    assert "secret-2" not in body


@pytest.mark.parametrize(
    ("query", "found"),
    [
        ("x\x00y", ["xy-test"]),
        ("\x00", ["tabandnewline", "xy-test"]),
        ("tab\tand\nnewline", ["tabandnewline"]),
    ],
)
def test_a_search_with_control_characters_is_searched_without_them(app, owner, acme, query, found):
    insert_links(app, acme, "owner", ["xy-test", "tabandnewline"])
    response = owner.get(dashboard_path(acme), query_string={"q": query}, headers=HX)
    assert response.status_code == 200
    assert re.findall(r'<tr id="link-([a-z0-9-]+)"', response.get_data(as_text=True)) == found


@pytest.mark.parametrize(
    ("page_query", "listed"),
    [
        ("", True),
        ("?q=launch", True),
        ("?q=other", False),
        ("?status=active", True),
        ("?status=inactive", False),
        ("?mine=1", True),
        ("?before=abc", False),
    ],
)
def test_a_new_link_joins_the_list_on_screen_only_if_that_list_would_show_it(
    app, owner, acme, page_query, listed
):
    headers = {**HX, "HX-Current-URL": f"http://localhost{dashboard_path(acme)}{page_query}"}
    data = {"url": "https://example.com/launch", "slug": "launch-day"}
    data["csrf_token"] = csrf_token(owner, dashboard_path(acme))

    response = owner.post(dashboard_path(acme), data=data, headers=headers)

    assert response.status_code == 201
    body = response.get_data(as_text=True)
    assert ('hx-target="#links-body"' in body) is listed
    assert ("It is not in the list below" in body) is not listed
    assert link_row(app, "launch-day") is not None


def test_filters_for_status_and_my_links(app, org_team, acme):
    insert_links(app, acme, "owner", ["mine-on", "mine-off"])
    insert_links(app, acme, "member", ["theirs"])
    insert_links(app, acme, "owner", ["old"])
    update_row(app, "mine-off", is_active=False)
    update_row(app, "old", expires_at=utcnow() - timedelta(hours=1))
    owner = org_team["owner"]

    def listed(**args):
        body = owner.get(dashboard_path(acme), query_string=args, headers=HX).get_data(as_text=True)
        return sorted(re.findall(r'<tr id="link-([a-z0-9-]+)"', body))

    assert listed(status="active") == ["mine-on", "theirs"]
    assert listed(status="inactive") == ["mine-off"]
    assert listed(status="expired") == ["old"]
    assert listed(mine="1") == ["mine-off", "mine-on", "old"]
    assert listed(mine="1", status="active") == ["mine-on"]
    page = owner.get(dashboard_path(acme)).get_data(as_text=True)
    assert 'data-status="expired"' in page
    assert 'data-status="inactive"' in page


def test_pages_stay_stable_while_links_are_added(app, owner, acme):
    original = [f"link-{n:02d}" for n in range(30)]
    insert_links(app, acme, "owner", original)

    def ids(body):
        return re.findall(r'<tr id="link-(link-\d+|new-\d)"', body)

    first = owner.get(dashboard_path(acme), headers=HX).get_data(as_text=True)
    first_ids = ids(first)
    assert len(first_ids) == 25
    older = re.search(r'href="([^"]*before=[^"]+)"', first).group(1).replace("&amp;", "&")

    for n in range(3):
        create_link(owner, acme, f"new-{n}")

    second_ids = ids(owner.get(older, headers=HX).get_data(as_text=True))
    assert not set(first_ids) & set(second_ids)
    assert sorted(first_ids + second_ids) == sorted(original)
    # The full page at the same address shows the same rows.
    assert ids(owner.get(older).get_data(as_text=True)) == second_ids


def test_a_tampered_cursor_is_refused(owner, acme):
    response = owner.get(dashboard_path(acme), query_string={"before": "not-a-cursor"})
    assert response.status_code == 422


# Editing, deactivating, deleting --------------------------------------------------------


def test_creator_edits_destination_and_title_and_the_redirect_follows_at_once(app, org_team, acme):
    member = org_team["member"]
    create_link(member, acme, "guide", "https://example.com/old", title="Old")
    assert member.get("/guide").headers["Location"] == "https://example.com/old"

    response = mutate(
        member,
        "PATCH",
        f"/orgs/{acme}/links/guide",
        acme,
        data={"url": "https://example.com/new", "title": "New"},
    )
    assert response.status_code == 200
    assert "HX-Request" in response.headers["Vary"]
    body = response.get_data(as_text=True)
    assert body.lstrip().startswith('<tr id="link-guide"')
    assert "https://<strong>example.com</strong>/new" in body
    assert member.get("/guide").headers["Location"] == "https://example.com/new"

    page = member.get(f"/orgs/{acme}/links/guide").get_data(as_text=True)
    history = page.split('id="link-history"')[1]
    assert "https://example.com/old" in history
    assert "https://example.com/new" in history
    assert "Member" in history
    with app.app_context():
        fields = sorted(db.session.execute(db.select(LinkChange.field)).scalars())
    assert fields == ["destination", "title"]


def test_edit_without_javascript_goes_back_to_the_link_page(app, org_team, acme):
    owner = org_team["owner"]
    create_link(owner, acme, "guide")
    form = owner.get(f"/orgs/{acme}/links/guide/edit")
    assert form.status_code == 200
    assert "<html" in form.get_data(as_text=True)
    response = owner.post(
        f"/orgs/{acme}/links/guide",
        data={"url": "https://example.com/v2", "title": "", "csrf_token": csrf_token(owner)},
    )
    assert response.status_code == 302
    assert response.headers["Location"] == f"/orgs/{acme}/links/guide"
    assert link_row(app, "guide").destination == "https://example.com/v2"
    assert owner.get("/guide").headers["Location"] == "https://example.com/v2"


def test_edit_sets_changes_and_clears_expiry_and_click_limit(app, org_team, acme):
    member = org_team["member"]
    create_link(member, acme, "promo")
    edit_path = f"/orgs/{acme}/links/promo"

    def save(expires_at: str, max_clicks: str):
        data = {"url": "https://example.com/page", "title": "", "expires_at": expires_at}
        return mutate(member, "PATCH", edit_path, acme, data={**data, "max_clicks": max_clicks})

    assert save("2031-05-01T09:30", "3").status_code == 200
    row = link_row(app, "promo")
    assert row.expires_at == datetime(2031, 5, 1, 9, 30, tzinfo=UTC)
    assert row.max_clicks == 3
    form = member.get(f"{edit_path}/edit", headers=HX).get_data(as_text=True)
    assert 'value="2031-05-01T09:30"' in form
    assert re.search(r'name="max_clicks"[^>]*value="3"', form)

    assert save("", "").status_code == 200
    row = link_row(app, "promo")
    assert (row.expires_at, row.max_clicks) == (None, None)

    history = member.get(edit_path).get_data(as_text=True).split('id="link-history"')[1]
    assert "Expiry" in history
    assert "2031-05-01T09:30+00:00" in history
    assert "Click limit" in history
    with app.app_context():
        changes = db.session.execute(
            db.select(LinkChange.field, LinkChange.old_value, LinkChange.new_value).order_by(
                LinkChange.id
            )
        ).all()
    assert [tuple(change) for change in changes] == [
        ("expires_at", None, "2031-05-01T09:30+00:00"),
        ("max_clicks", None, "3"),
        ("expires_at", "2031-05-01T09:30+00:00", None),
        ("max_clicks", "3", None),
    ]


def test_raising_the_click_limit_brings_an_exhausted_link_back(app, org_team, acme):
    owner, visitor = org_team["owner"], app.test_client()
    create_link(owner, acme, "once", max_clicks="1")
    assert visitor.get("/once").status_code == 302
    assert visitor.get("/once").status_code == 410

    data = {"url": "https://example.com/page", "title": "", "expires_at": "", "max_clicks": "5"}
    assert mutate(owner, "PATCH", f"/orgs/{acme}/links/once", acme, data=data).status_code == 200

    assert visitor.get("/once").status_code == 302


def test_an_expired_links_unchanged_expiry_does_not_block_other_edits(app, org_team, acme):
    owner = org_team["owner"]
    create_link(owner, acme, "past")
    update_row(app, "past", expires_at=datetime(2020, 1, 1, 12, 0, tzinfo=UTC))
    data = {"url": "https://example.com/new", "title": "Renamed", "expires_at": "2020-01-01T12:00"}

    response = mutate(owner, "PATCH", f"/orgs/{acme}/links/past", acme, data=data)

    assert response.status_code == 200
    row = link_row(app, "past")
    assert (row.title, row.expires_at) == ("Renamed", datetime(2020, 1, 1, 12, 0, tzinfo=UTC))


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("expires_at", "2001-01-01T00:00", "Choose an expiry time in the future."),
        ("expires_at", "next tuesday", "Give the expiry as a date and time"),
        ("max_clicks", "0", "Give the click limit as a whole number of 1 or more."),
        ("max_clicks", "-3", "Give the click limit as a whole number of 1 or more."),
        ("max_clicks", "1e3", "Give the click limit as a whole number of 1 or more."),
    ],
)
def test_a_bad_expiry_or_click_limit_is_shown_by_its_field(
    app, org_team, acme, field, value, message
):
    owner = org_team["owner"]
    create_link(owner, acme, "guide")
    data = {"url": "https://example.com/other", "title": "", "expires_at": "", "max_clicks": ""}

    response = mutate(
        owner, "PATCH", f"/orgs/{acme}/links/guide", acme, data={**data, field: value}
    )

    assert response.status_code == 422
    body = response.get_data(as_text=True)
    assert f'id="{field}-error"' in body
    assert message in body
    row = link_row(app, "guide")
    assert (row.destination, row.expires_at, row.max_clicks) == (
        "https://example.com/page",
        None,
        None,
    )


def test_edit_form_fragment_is_a_table_row(org_team, acme):
    create_link(org_team["owner"], acme, "guide")
    response = org_team["owner"].get(f"/orgs/{acme}/links/guide/edit", headers=HX)
    body = response.get_data(as_text=True)
    assert body.lstrip().startswith('<tr id="link-guide" class="link-row editing">')
    assert 'hx-patch="/orgs/' in body
    assert "HX-Request" in response.headers["Vary"]


def test_an_invalid_edit_changes_nothing(app, org_team, acme):
    owner = org_team["owner"]
    create_link(owner, acme, "guide", "https://example.com/old")
    response = mutate(
        owner, "PATCH", f"/orgs/{acme}/links/guide", acme, data={"url": "javascript:alert(1)"}
    )
    assert response.status_code == 422
    assert 'id="url-error"' in response.get_data(as_text=True)
    assert link_row(app, "guide").destination == "https://example.com/old"


def test_admin_edits_a_members_link(app, org_team, acme):
    create_link(org_team["member"], acme, "guide")
    response = mutate(
        org_team["admin"],
        "PATCH",
        f"/orgs/{acme}/links/guide",
        acme,
        data={"url": "https://example.com/by-admin", "title": "t"},
    )
    assert response.status_code == 200
    assert link_row(app, "guide").destination == "https://example.com/by-admin"


def test_member_cannot_change_someone_elses_link(app, org_team, acme):
    create_link(org_team["owner"], acme, "guide", "https://example.com/old", title="Old")
    member = org_team["member"]
    page = member.get(dashboard_path(acme)).get_data(as_text=True)
    row = page.split('id="link-guide"')[1].split("</tr>")[0]
    assert "Edit" not in row
    assert "Deactivate" not in row

    base = f"/orgs/{acme}/links/guide"
    assert member.get(f"{base}/edit").status_code == 403
    assert (
        mutate(member, "PATCH", base, acme, data={"url": "https://evil.example/"}).status_code
        == 403
    )
    assert (
        mutate(member, "POST", base, acme, data={"url": "https://evil.example/"}).status_code == 403
    )
    assert mutate(member, "POST", f"{base}/deactivate", acme).status_code == 403
    link = link_row(app, "guide")
    assert (link.destination, link.title, link.is_active) == (
        "https://example.com/old",
        "Old",
        True,
    )


def test_deactivating_and_reactivating_keeps_the_link_and_its_clicks(app, org_team, acme):
    member = org_team["member"]
    create_link(member, acme, "sale")
    update_row(app, "sale", click_count=7)

    response = mutate(member, "POST", f"/orgs/{acme}/links/sale/deactivate", acme)
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert 'data-status="inactive"' in body
    assert "Reactivate" in body
    gone = member.get("/sale")
    assert gone.status_code == 410
    assert "deactivated" in gone.get_data(as_text=True)
    link = link_row(app, "sale")
    assert (link.is_active, link.click_count) == (False, 7)
    assert link.deactivated_at is not None

    response = mutate(member, "POST", f"/orgs/{acme}/links/sale/activate", acme)
    assert 'data-status="active"' in response.get_data(as_text=True)
    assert member.get("/sale").status_code == 302
    # The earlier clicks are kept and the new redirect counts on top of them.
    assert shipped(app) == 1
    assert link_row(app, "sale").click_count == 8


def test_deactivate_without_javascript_redirects_to_the_link_page(app, org_team, acme):
    owner = org_team["owner"]
    create_link(owner, acme, "sale")
    response = mutate(owner, "POST", f"/orgs/{acme}/links/sale/deactivate", acme, htmx=False)
    assert response.status_code == 302
    assert response.headers["Location"] == f"/orgs/{acme}/links/sale"
    assert link_row(app, "sale").is_active is False
    page = owner.get(response.headers["Location"]).get_data(as_text=True)
    assert 'data-status="inactive"' in page
    assert ">Reactivate</button>" in page
    assert owner.get("/sale").status_code == 410


def test_admin_deletes_a_link_and_its_slug_stays_retired(app, org_team, acme):
    create_link(org_team["member"], acme, "old-news")
    admin = org_team["admin"]
    page = admin.get(dashboard_path(acme)).get_data(as_text=True)
    assert "hx-delete=" in page
    assert "hx-confirm=" in page

    response = mutate(admin, "DELETE", f"/orgs/{acme}/links/old-news", acme)
    assert response.status_code == 200
    assert response.get_data(as_text=True) == ""
    assert "HX-Request" in response.headers["Vary"]
    assert admin.get("/old-news").status_code == 410
    assert 'id="link-old-news"' not in admin.get(dashboard_path(acme)).get_data(as_text=True)
    assert admin.get(f"/orgs/{acme}/links/old-news").status_code == 404
    link = link_row(app, "old-news")
    assert link.deleted_at is not None
    assert link.deleted_by_id is not None


def test_deleting_from_the_link_page_sends_htmx_to_the_dashboard(org_team, acme):
    owner = org_team["owner"]
    create_link(owner, acme, "old-news")
    response = owner.delete(
        f"/orgs/{acme}/links/old-news",
        headers={
            **HX,
            "X-CSRFToken": csrf_token(owner),
            "HX-Current-URL": f"http://localhost/orgs/{acme}/links/old-news",
        },
    )
    assert response.status_code == 200
    assert response.headers["HX-Redirect"] == dashboard_path(acme)


def test_delete_without_htmx_redirects_to_the_dashboard(app, org_team, acme):
    create_link(org_team["owner"], acme, "old-news")
    response = mutate(org_team["owner"], "DELETE", f"/orgs/{acme}/links/old-news", acme, htmx=False)
    assert response.status_code == 303
    assert response.headers["Location"] == dashboard_path(acme)
    assert "HX-Request" in response.headers["Vary"]
    assert link_row(app, "old-news").deleted_at is not None


def test_delete_without_javascript_asks_on_a_page_first(app, org_team, acme):
    create_link(org_team["member"], acme, "old-news", "https://example.com/old")
    admin = org_team["admin"]
    row = admin.get(dashboard_path(acme)).get_data(as_text=True).split('id="link-old-news"')[1]
    confirm_path = f"/orgs/{acme}/links/old-news/delete"
    assert f'href="{confirm_path}"' in row

    page = admin.get(confirm_path)
    body = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "Delete https://go.acme.test/old-news?" in body
    assert "https://example.com/old" in body
    assert f'action="{confirm_path}"' in body
    assert link_row(app, "old-news").deleted_at is None

    response = admin.post(confirm_path, data={"csrf_token": csrf_token(admin)})
    assert response.status_code == 303
    assert response.headers["Location"] == dashboard_path(acme)
    assert link_row(app, "old-news").deleted_at is not None
    dashboard = admin.get(dashboard_path(acme)).get_data(as_text=True)
    assert "Deleted https://go.acme.test/old-news" in dashboard
    assert 'id="link-old-news"' not in dashboard
    assert admin.get("/old-news").status_code == 410


def test_a_member_can_neither_open_nor_send_the_delete_page(app, org_team, acme):
    member = org_team["member"]
    create_link(member, acme, "mine")
    confirm_path = f"/orgs/{acme}/links/mine/delete"
    assert member.get(confirm_path).status_code == 403
    assert member.post(confirm_path, data={"csrf_token": csrf_token(member)}).status_code == 403
    assert link_row(app, "mine").deleted_at is None


def test_member_sees_no_delete_button_and_a_forged_delete_is_forbidden(app, org_team, acme):
    member = org_team["member"]
    create_link(member, acme, "mine")
    page = member.get(dashboard_path(acme)).get_data(as_text=True)
    assert "hx-delete=" not in page
    response = mutate(member, "DELETE", f"/orgs/{acme}/links/mine", acme)
    assert response.status_code == 403
    assert link_row(app, "mine").deleted_at is None
    assert member.get("/mine").status_code == 302


def test_delete_without_a_csrf_token_is_refused(app, org_team, acme):
    create_link(org_team["owner"], acme, "keep")
    response = org_team["admin"].delete(f"/orgs/{acme}/links/keep", headers=HX)
    assert response.status_code == 400
    assert link_row(app, "keep").deleted_at is None


# Shapes, isolation and escaping ---------------------------------------------------------


def test_link_page_shows_details_and_its_fragment_is_the_row(org_team, acme):
    owner = org_team["owner"]
    create_link(owner, acme, "guide", title="Guide")
    page = owner.get(f"/orgs/{acme}/links/guide")
    body = page.get_data(as_text=True)
    assert "HX-Request" in page.headers["Vary"]
    assert 'id="link-details"' in body
    assert 'id="link-history"' in body
    assert "No changes since the link was created." in body
    fragment = owner.get(f"/orgs/{acme}/links/guide", headers=HX).get_data(as_text=True)
    assert fragment.lstrip().startswith('<tr id="link-guide"')


def test_outsiders_get_404_on_every_links_route(app, org_team, acme):
    create_link(org_team["owner"], acme, "private", "https://example.com/secret-place")
    outsider = org_team["outsider"]
    token = csrf_token(outsider)
    # Every route of the links blueprint, so a new one is covered without editing this test.
    requests = []
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("links."):
            continue
        path = rule.rule.replace("<org_slug>", acme).replace("<slug>", "private")
        assert "<" not in path, f"teach this test the parameters of {rule.rule}"
        requests += [(method, path) for method in sorted(rule.methods - {"HEAD", "OPTIONS"})]
    assert len(requests) >= 9
    for method, path in requests:
        for extra in ({}, HX):
            response = outsider.open(
                path,
                method=method,
                headers={"X-CSRFToken": token, **extra},
                data={"url": "https://evil.example/"},
            )
            assert response.status_code == 404, (method, path)
            assert "secret-place" not in response.get_data(as_text=True)
    link = link_row(app, "private")
    assert (link.destination, link.is_active, link.deleted_at) == (
        "https://example.com/secret-place",
        True,
        None,
    )


def test_a_link_of_another_org_is_not_found_through_my_org(app, owner, acme, signed_in_client):
    rival = signed_in_client("rival")
    rival_org = create_org_as(rival, "Rival")
    insert_links(app, rival_org, "rival", ["theirs"])
    assert owner.get(f"/orgs/{acme}/links/theirs").status_code == 404
    assert mutate(owner, "POST", f"/orgs/{acme}/links/theirs/deactivate", acme).status_code == 404
    assert link_row(app, "theirs").is_active is True


def test_signed_out_htmx_requests_are_sent_to_sign_in_without_data(app, owner, acme, client):
    create_link(owner, acme, "guide", "https://example.com/secret-place")
    response = client.get(f"/orgs/{acme}/links/guide", headers=HX)
    assert response.status_code == 401
    # After signing in, the person comes back to what they were looking at.
    assert response.headers["HX-Redirect"] == f"/login?next=%2Forgs%2F{acme}%2Flinks%2Fguide"
    assert response.get_data(as_text=True) == ""
    assert client.get(f"/orgs/{acme}/links/guide").status_code == 302


def test_titles_are_escaped_everywhere(app, org_team, acme):
    owner = org_team["owner"]
    create_link(owner, acme, "xss", title="<img src=x onerror=alert(1)>")
    for path, headers in [
        (dashboard_path(acme), {}),
        (dashboard_path(acme), HX),
        (f"/orgs/{acme}/links/xss", HX),
        (f"/orgs/{acme}/links/xss", {}),
        (f"/orgs/{acme}/links/xss/edit", {}),
    ]:
        body = owner.get(path, headers=headers).get_data(as_text=True)
        assert "<img src=x" not in body
        assert "&lt;img src=x onerror=alert(1)&gt;" in body


def test_a_javascript_destination_put_in_by_sql_renders_as_a_dead_link(app, org_team, acme):
    owner = org_team["owner"]
    create_link(owner, acme, "legacy")
    update_row(app, "legacy", destination="javascript:alert(1)")
    for path in (dashboard_path(acme), f"/orgs/{acme}/links/legacy"):
        body = owner.get(path).get_data(as_text=True)
        assert 'href="javascript:' not in body
        assert 'href="#"' in body


def test_every_template_is_autoescaped_by_its_name(app):
    names = app.jinja_env.list_templates()
    assert names
    assert all(name.endswith(".html") for name in names)


# DESIGN.md section 4, as data: who may do what to their own and to someone else's link.
ROLE_MATRIX = [
    # (role, action, whose link, expected status)
    *[
        (role, action, "own", 200)
        for role in ("owner", "admin", "member")
        for action in ("edit", "deactivate", "activate")
    ],
    *[
        (role, action, "other", 200)
        for role in ("owner", "admin")
        for action in ("edit", "deactivate", "activate", "delete")
    ],
    *[("member", action, "other", 403) for action in ("edit", "deactivate", "activate", "delete")],
    ("owner", "delete", "own", 200),
    ("admin", "delete", "own", 200),
    ("member", "delete", "own", 403),
]
ACTIONS = {
    "edit": ("PATCH", "", {"url": "https://example.com/changed", "title": "Changed"}),
    "deactivate": ("POST", "/deactivate", None),
    "activate": ("POST", "/activate", None),
    "delete": ("DELETE", "", None),
}


@pytest.mark.parametrize(("role", "action", "whose", "expected"), ROLE_MATRIX)
def test_role_matrix(app, org_team, acme, role, action, whose, expected):
    creator = role if whose == "own" else ("member" if role != "member" else "owner")
    create_link(org_team[creator], acme, "target", "https://example.com/original", title="T")
    if action == "activate":
        update_row(app, "target", is_active=False)
    before = link_row(app, "target")
    method, suffix, data = ACTIONS[action]
    response = mutate(org_team[role], method, f"/orgs/{acme}/links/target{suffix}", acme, data=data)
    assert response.status_code == expected
    after = link_row(app, "target")
    fields = ("destination", "title", "is_active", "deleted_at")
    changed = any(getattr(before, f) != getattr(after, f) for f in fields)
    assert changed is (expected == 200)


# Every links route that htmx calls, in both shapes: (method, path under /orgs/<org>/links,
# form data, status for a browser, status for htmx, how the htmx fragment starts).
SHAPES = [
    ("GET", "", None, 200, 200, '<section id="links"'),
    ("POST", "", {"url": "https://example.com/new"}, 302, 201, '<form id="create-link-form"'),
    ("GET", "/{slug}", None, 200, 200, '<tr id="link-{slug}"'),
    ("GET", "/{slug}/stats", None, 302, 200, '<section id="link-stats"'),
    ("GET", "/{slug}/edit", None, 200, 200, '<tr id="link-{slug}" class="link-row editing"'),
    ("PATCH", "/{slug}", {"url": "https://example.com/v2"}, 302, 200, '<tr id="link-{slug}"'),
    ("POST", "/{slug}", {"url": "https://example.com/v3"}, 302, 200, '<tr id="link-{slug}"'),
    ("POST", "/{slug}/deactivate", None, 302, 200, '<tr id="link-{slug}"'),
    ("POST", "/{slug}/activate", None, 302, 200, '<tr id="link-{slug}"'),
    ("DELETE", "/{slug}", None, 303, 200, ""),
]
# Routes htmx never calls: downloads, the count a row polls, and the no-JavaScript delete page.
NOT_HTMX = {
    "links.qr",
    "links.links_csv",
    "links.clicks_csv",
    "links.click_count",
    "links.confirm_delete",
    "links.delete_confirmed",
}


@pytest.mark.parametrize(("method", "suffix", "data", "page_status", "hx_status", "starts"), SHAPES)
def test_every_htmx_endpoint_has_a_full_page_twin(
    org_team, acme, method, suffix, data, page_status, hx_status, starts
):
    owner = org_team["owner"]
    shapes = {}
    for htmx, slug in ((False, "for-page"), (True, "for-htmx")):
        create_link(owner, acme, slug)
        path = f"/orgs/{acme}/links{suffix.format(slug=slug)}"
        shapes[htmx] = mutate(owner, method, path, acme, htmx=htmx, data=data)

    page, fragment = shapes[False], shapes[True]
    assert (page.status_code, fragment.status_code) == (page_status, hx_status)
    assert "HX-Request" in page.headers["Vary"]
    assert "HX-Request" in fragment.headers["Vary"]
    if page_status == 200:
        assert "<html" in page.get_data(as_text=True)
    body = fragment.get_data(as_text=True)
    assert "<html" not in body
    assert body.lstrip().startswith(starts.format(slug="for-htmx"))


def test_the_shapes_table_names_every_links_route(app):
    covered = {(method, f"/orgs/<org_slug>/links{suffix}") for method, suffix, *_ in SHAPES}
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("links.") or rule.endpoint in NOT_HTMX:
            continue
        path = rule.rule.replace("<slug>", "{slug}")
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert (method, path) in covered, f"add {method} {rule.rule} to SHAPES or NOT_HTMX"
