"""The public redirect `GET /<slug>`: where it sends visitors, and when it refuses to."""

import logging
from datetime import timedelta

import pytest
from sqlalchemy import func

from app.extensions import db
from app.models import Click, Org, utcnow
from tests.link_helpers import create_link, link_row, shipped, update_row


@pytest.fixture
def links(org_team):
    """The org's owner with one active link, /launch -> https://example.com/launch."""
    create_link(org_team["owner"], org_team["slug"], "launch", "https://example.com/launch")
    return org_team


def test_redirects_with_302_and_forbids_caching(client, links):
    response = client.get("/launch")
    assert response.status_code == 302
    assert response.headers["Location"] == "https://example.com/launch"
    assert response.headers["Cache-Control"] == "no-store"


def test_slugs_match_in_any_case(client, links):
    assert client.get("/LaUnCh").headers["Location"] == "https://example.com/launch"


def test_unknown_slug_is_404_with_the_slug_escaped(client, links):
    response = client.get("/%3Cimg%20src=x%20onerror=alert(1)%3E")
    assert response.status_code == 404
    body = response.get_data(as_text=True)
    assert "<img src=x" not in body
    assert "There is no short link /&lt;img src=x onerror=alert(1)&gt;." in body
    assert response.headers["Cache-Control"] == "no-store"


def test_reserved_words_never_reach_the_redirect(client):
    assert client.get("/logout").status_code == 405
    assert client.get("/healthz").status_code == 200


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"is_active": False}, "was deactivated"),
        ({"deleted_at": utcnow()}, "was deleted"),
        ({"expires_at": utcnow() - timedelta(minutes=1)}, "has expired"),
        ({"max_clicks": 5, "human_click_count": 5}, "has expired"),
    ],
)
def test_inactive_deleted_and_expired_links_are_gone(app, client, links, change, message):
    update_row(app, "launch", **change)
    response = client.get("/launch")
    assert response.status_code == 410
    assert message in response.get_data(as_text=True)
    assert "Location" not in response.headers
    assert response.headers["Cache-Control"] == "no-store"


def test_a_link_that_has_not_expired_yet_still_redirects(app, client, links):
    update_row(app, "launch", expires_at=utcnow() + timedelta(minutes=5), max_clicks=5)
    assert client.get("/launch").status_code == 302


@pytest.mark.parametrize(
    "destination",
    [
        "https://ok.example/a\r\nSet-Cookie: pwn=1",
        "javascript:alert(1)",
        "http://169.254.169.254/latest/meta-data/",
        "https://go.acme.test/loop",
    ],
)
def test_a_stored_destination_that_fails_validation_is_410_and_logged(
    app, client, links, caplog, destination
):
    update_row(app, "launch", destination=destination)
    with caplog.at_level(logging.ERROR):
        response = client.get("/launch")
    assert response.status_code == 410
    assert "Set-Cookie: pwn" not in str(response.headers)
    errors = [record.getMessage() for record in caplog.records if record.levelno == logging.ERROR]
    assert len(errors) == 1
    assert errors[0].startswith(f"link {link_row(app, 'launch').id} not redirected")


@pytest.mark.parametrize(
    "destination",
    [
        "https://" + "a" * 64 + ".example/",
        "https://a..example/",
        "https://" + ".".join(["a" * 60] * 4 + ["b" * 10]) + "/",
    ],
    ids=["64-character label", "empty label", "254-character host"],
)
def test_a_stored_destination_the_redirect_can_not_send_is_disabled_and_counts_no_click(
    app, client, links, caplog, destination
):
    # Written before validation refused such hosts: every visit used to count, then fail.
    update_row(app, "launch", destination=destination)

    with caplog.at_level(logging.ERROR):
        response = client.get("/launch")

    assert response.status_code == 410
    assert "Link disabled" in response.get_data(as_text=True)
    assert "Location" not in response.headers
    link = link_row(app, "launch")
    errors = [record.getMessage() for record in caplog.records if record.levelno == logging.ERROR]
    assert len(errors) == 1
    assert errors[0].startswith(f"link {link.id} not redirected")
    assert link.click_count == 0
    with app.app_context():
        assert db.session.execute(db.select(func.count(Click.id))).scalar_one() == 0


def test_a_link_to_one_of_our_hosts_redirects_only_through_our_other_hosts(app, client, links):
    with app.app_context():
        db.session.execute(db.update(Org).values(allow_private_destinations=True))
        db.session.commit()
    update_row(app, "launch", destination="http://localhost/wiki")

    # The second round is answered from the worker's memory, which must not carry the
    # first host's verdict over to the other.
    for _ in range(2):
        through_other_host = client.get("/launch", base_url="http://127.0.0.1")
        assert through_other_host.headers["Location"] == "http://localhost/wiki"
        assert client.get("/launch", base_url="http://localhost").status_code == 410
    shipped(app)
    assert link_row(app, "launch").click_count == 2


@pytest.fixture
def down_app(make_app, app_config, tmp_path):
    """The app configured against a database server that does not answer."""
    unreachable = (
        "postgresql+psycopg://postgres@127.0.0.1:1/nothing?connect_timeout=2"
        if app_config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql")
        else f"sqlite:///{tmp_path / 'missing-dir' / 'db.sqlite3'}"
    )
    return make_app(SQLALCHEMY_DATABASE_URI=unreachable)


def test_a_redirect_without_its_database_answers_503_and_retry_after(down_app):
    response = down_app.test_client().get("/promo")

    body = response.get_data(as_text=True)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "30"
    assert response.headers["Cache-Control"] == "no-store"
    assert "Location" not in response.headers
    assert "Try again in a minute" in body
    assert "Traceback" not in body
    assert "OperationalError" not in body


def test_a_signed_in_page_without_its_database_answers_503_not_500(down_app, signed_in_client):
    browser = signed_in_client("ada")
    # The same browser (its session cookie) against the app whose database is gone.
    cookie = browser.get_cookie("linkdeck_session")
    client = down_app.test_client()
    client.set_cookie("linkdeck_session", cookie.value)

    response = client.get("/orgs")

    assert response.status_code == 503
    assert response.headers["Retry-After"] == "30"
    assert "can not reach its database" in response.get_data(as_text=True)

    htmx = client.get("/orgs", headers={"HX-Request": "true"})
    assert htmx.status_code == 503
    assert htmx.headers["HX-Retarget"] == "#alerts"
    assert 'role="alert"' in htmx.get_data(as_text=True)


def test_robots_txt_keeps_crawlers_out_and_counts_nothing(app, client, links):
    response = client.get("/robots.txt")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    assert "User-agent: *\nDisallow: /" in response.get_data(as_text=True)
    assert link_row(app, "launch").click_count == 0
