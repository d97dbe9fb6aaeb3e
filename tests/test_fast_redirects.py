"""The cached redirect (app/fast_redirects.py): answered before Flask, and the same answer.

A visit is answered in front of Flask only when nothing about it needs Flask. Whether
Flask saw a request is read from its `request_started` signal; everything else is what a
visitor sees and what the database stores.
"""

import contextlib
import logging

import pytest
from flask import request_started

from app.extensions import db
from app.models import Click
from tests.click_factories import CHROME_ON_WINDOWS, clicks_of, visit
from tests.link_helpers import create_link, link_row, shipped

SLUG = "launch"
DESTINATION = "https://example.com/launch?a=1&b=<2>"
# The destination as validated and stored, which is where the redirect sends visitors.
STORED = "https://example.com/launch?a=1&b=%3C2%3E"


@contextlib.contextmanager
def requests_flask_saw(app):
    """Collect the paths of the requests that reached Flask while the block runs."""
    seen = []

    def started(sender, **_):
        from flask import request

        seen.append(request.path)

    request_started.connect(started, app)
    try:
        yield seen
    finally:
        request_started.disconnect(started, app)


@pytest.fixture
def launch(app, org_team):
    """The org's link /launch, already followed once, so this worker has it cached."""
    create_link(org_team["owner"], org_team["slug"], SLUG, DESTINATION)
    assert visit(app, SLUG).status_code == 302
    return org_team


def click_fields(click) -> dict:
    """What a stored click says about its visit (its id and time aside)."""
    return {
        column.name: getattr(click, column.name)
        for column in Click.__table__.columns
        if column.name not in ("id", "clicked_at")
    }


def test_a_cached_links_redirect_is_the_same_answer_without_flask(app, org_team):
    create_link(org_team["owner"], org_team["slug"], SLUG, DESTINATION)
    headers = {"Referer": "https://news.example.org/item?id=1"}

    with requests_flask_saw(app) as seen:
        first = visit(app, SLUG, **headers)  # not cached yet: Flask's view answers
        second = visit(app, SLUG, **headers)  # cached: answered in front of Flask

    assert seen == ["/launch"]
    assert first.status_code == second.status_code == 302
    assert second.headers["Location"] == STORED
    assert second.headers["Cache-Control"] == "no-store"
    assert "Strict-Transport-Security" not in second.headers  # plain HTTP
    assert sorted(second.headers.items()) == sorted(first.headers.items())
    assert second.get_data() == first.get_data()
    assert "example.com/launch?a=1&amp;b=%3C2%3E" in second.get_data(as_text=True)
    first_click, second_click = clicks_of(app, SLUG)
    assert click_fields(second_click) == click_fields(first_click)
    assert click_fields(second_click)["referrer_host"] == "news.example.org"
    assert link_row(app, SLUG).click_count == 2


def test_behind_a_trusted_proxy_the_cached_redirect_sees_the_visitor_and_https(make_app, org_team):
    proxied = make_app(TRUSTED_PROXIES=1, COUNTRY_HEADER="CF-IPCountry")
    create_link(org_team["owner"], org_team["slug"], SLUG, DESTINATION)
    headers = {"X-Forwarded-For": "198.51.100.9", "X-Forwarded-Proto": "https"}

    with requests_flask_saw(proxied) as seen:
        first = visit(proxied, SLUG, **headers, **{"CF-IPCountry": "nz"})
        second = visit(proxied, SLUG, **headers, **{"CF-IPCountry": "nz"})
        elsewhere = visit(proxied, SLUG, **{"X-Forwarded-For": "192.0.2.44"})

    assert seen == ["/launch"]
    assert first.headers["Strict-Transport-Security"].startswith("max-age=")
    assert sorted(second.headers.items()) == sorted(first.headers.items())
    assert "Strict-Transport-Security" not in elsewhere.headers
    first_click, second_click, third_click = clicks_of(proxied, SLUG)
    assert click_fields(second_click) == click_fields(first_click)
    assert second_click.country == "NZ"
    # Another forwarded address is another visitor, though the connection is the same.
    assert third_click.visitor_hash != second_click.visitor_hash


@pytest.mark.parametrize(
    ("path", "method", "status"),
    [
        ("/launch+", "GET", 200),  # the preview page
        ("/launch", "HEAD", 302),  # answered, never counted
        ("/healthz", "GET", 200),  # one of our routes
        ("/nothing-here", "GET", 404),
        ("/launch/more", "GET", 404),
    ],
)
def test_requests_the_cached_redirect_is_not_for_reach_flask(app, launch, path, method, status):
    with requests_flask_saw(app) as seen:
        response = app.test_client().open(path, method=method)

    assert response.status_code == status
    assert seen == [path]
    assert link_row(app, SLUG).click_count == 1


def test_a_member_following_a_cached_link_is_counted_as_the_teams_own_click(app, launch):
    member = launch["member"]

    with requests_flask_saw(app) as seen:
        response = member.get(f"/{SLUG}", headers={"User-Agent": CHROME_ON_WINDOWS})
    shipped(app)

    assert response.status_code == 302
    assert seen == ["/launch"]
    assert [click.is_internal for click in clicks_of(app, SLUG)] == [False, True]
    link = link_row(app, SLUG)
    assert (link.click_count, link.human_click_count) == (2, 1)


def test_an_untrusted_host_is_refused_even_for_a_cached_link(make_app, org_team):
    strict = make_app(TRUSTED_HOSTS=["go.example.test"])
    create_link(org_team["owner"], org_team["slug"], SLUG, DESTINATION)
    client = strict.test_client()
    assert client.get(f"/{SLUG}", base_url="http://go.example.test").status_code == 302

    response = client.get(f"/{SLUG}", base_url="http://evil.example")

    assert response.status_code == 400
    assert "Location" not in response.headers
    shipped(strict)
    assert link_row(strict, SLUG).click_count == 1


def test_a_cached_redirect_still_answers_when_its_click_can_not_be_spooled(
    make_app, org_team, tmp_path, caplog
):
    blocked = tmp_path / "a-file"
    blocked.write_text("a file where the spool directory should be")
    worker = make_app(CLICK_SPOOL_DIR=str(blocked))
    create_link(org_team["owner"], org_team["slug"], SLUG, DESTINATION)
    worker.test_client().get(f"/{SLUG}")  # cached now (its own click is dropped too)

    with caplog.at_level(logging.ERROR), requests_flask_saw(worker) as seen:
        response = worker.test_client().get(f"/{SLUG}")

    assert response.status_code == 302
    assert response.headers["Location"] == STORED
    assert seen == []
    assert "event=click_dropped" in caplog.text
    with worker.app_context():
        assert db.session.execute(db.text("SELECT count(*) FROM clicks")).scalar() == 0
