"""Headers and cookies a browser and a proxy rely on: no cached signed-in pages, HSTS over
HTTPS, the __Host- session cookie, and only our own hosts answered."""

from urllib.parse import parse_qs, urlsplit

import pytest

from app.config import trusted_hosts
from tests.link_helpers import HX, create_link


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/orgs", None),
        ("/orgs/acme/links", None),
        ("/orgs/acme/links", HX),
        ("/orgs/acme/links/cached", None),
        ("/orgs/acme/links/cached", HX),
        ("/orgs/acme/links/cached/stats", HX),
        ("/orgs/acme/links/cached/edit", HX),
        ("/orgs/acme/members", None),
        ("/orgs/acme/members", HX),
        ("/orgs/acme/settings", None),
        ("/orgs/acme/audit", None),
    ],
)
def test_no_signed_in_page_or_fragment_may_be_cached(org_team, path, headers):
    owner = org_team["owner"]
    create_link(owner, org_team["slug"], "cached")

    response = owner.get(path, headers=headers)

    assert response.status_code == 200, path
    assert response.headers["Cache-Control"] == "no-store"


def test_the_signed_out_landing_page_may_be_cached_by_the_browser(client):
    response = client.get("/")
    assert response.status_code == 200
    assert "no-store" not in response.headers.get("Cache-Control", "")


def test_https_responses_carry_strict_transport_security(client):
    secure = client.get("/", base_url="https://localhost")
    plain = client.get("/")

    assert secure.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    assert "Strict-Transport-Security" not in plain.headers


def test_a_forwarded_proto_counts_only_behind_a_trusted_proxy(make_app):
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "198.51.100.1"}
    direct = make_app().test_client().get("/", headers=forwarded)
    behind_router = make_app(TRUSTED_PROXIES=1).test_client().get("/", headers=forwarded)

    assert "Strict-Transport-Security" not in direct.headers
    assert "Strict-Transport-Security" in behind_router.headers


def test_a_secure_session_cookie_takes_the_host_prefix(make_app):
    client = make_app(SESSION_COOKIE_SECURE=True).test_client()

    response = client.get("/login", base_url="https://localhost")

    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("__Host-linkdeck_session=")
    assert "Secure" in cookie
    assert "Path=/" in cookie
    assert "Domain=" not in cookie


def test_a_plain_http_session_cookie_keeps_its_name(client):
    response = client.get("/login")
    assert response.headers["Set-Cookie"].startswith("linkdeck_session=")


def test_a_forged_host_header_can_not_steer_sign_in(client):
    forged = client.get("/login", headers={"Host": "evil.example"})

    assert forged.status_code == 400
    assert "evil.example" not in forged.headers.get("Location", "")


def test_sign_in_sends_the_provider_back_to_a_trusted_host(client):
    response = client.get("/login", headers={"Host": "localhost"})

    assert response.status_code == 302
    query = parse_qs(urlsplit(response.headers["Location"]).query)
    assert query["redirect_uri"] == ["http://localhost/auth/callback"]


def test_a_forged_host_can_not_name_the_short_links_on_a_page(org_team):
    owner = org_team["owner"]
    response = owner.get("/orgs/acme/links", headers={"Host": "evil.example"})
    assert response.status_code == 400
    assert "evil.example" not in response.get_data(as_text=True)


def test_trusted_hosts_come_from_the_short_and_app_urls_unless_set():
    derived = trusted_hosts(
        {"SHORT_BASE_URL": "https://go.acme.com", "APP_BASE_URL": "https://links.acme.com:8443"}
    )
    explicit = trusted_hosts(
        {"TRUSTED_HOSTS": ["links.acme.com"], "SHORT_BASE_URL": "https://go.acme.com"}
    )

    assert derived == ["go.acme.com", "links.acme.com"]
    assert explicit == ["links.acme.com"]
    assert trusted_hosts({"SHORT_BASE_URL": "", "APP_BASE_URL": ""}) is None


def test_derived_trusted_hosts_answer_their_hosts_and_refuse_others(make_app):
    client = make_app(
        TRUSTED_HOSTS=[],
        SHORT_BASE_URL="https://go.acme.test",
        APP_BASE_URL="https://links.acme.test",
    ).test_client()

    assert client.get("/healthz", headers={"Host": "links.acme.test"}).status_code == 200
    assert client.get("/healthz", headers={"Host": "go.acme.test"}).status_code == 200
    assert client.get("/healthz", headers={"Host": "evil.example"}).status_code == 400
