"""Sessions that end on the server: a copied cookie stops working once its session signed
out, was ended by "Sign out everywhere" or expired; signing out also ends the session at
the provider (OIDC RP-Initiated Logout) when its discovery document offers that."""

import re
import threading
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import oidc_provider_mock
import pytest
import requests
import werkzeug.serving
from flask import request as provider_request
from joserfc import jwt
from joserfc.jwk import KeySet

from app.extensions import db
from app.models import User, UserSession, utcnow
from app.services.sessions import SESSION_COOKIE_FIELD, hash_session_token
from tests.conftest import (
    CLIENT_ID,
    IdentityProvider,
    create_org_as,
    csrf_token,
    csrf_token_from,
    finish_sign_in,
    start_sign_in,
)
from tests.org_helpers import HX, recorded_sql

SIGNED_OUT = "You are signed out."


# --- helpers --------------------------------------------------------------------------


def copy_of_browser(app, browser):
    """A new test client holding a copy of `browser`'s session cookie, as a thief would."""
    name = app.config["SESSION_COOKIE_NAME"]
    copy = app.test_client()
    copy.set_cookie(name, browser.get_cookie(name).value)
    return copy


def sign_out(browser, path: str = "/logout"):
    """Press a sign-out button on a page this browser has open."""
    return browser.post(path, data={"csrf_token": csrf_token(browser)})


def assert_signed_out_answer(browser, hx: bool) -> None:
    """This browser is treated as signed out: a page sends it to sign in, a fragment
    answers 401 with HX-Redirect (following a redirect would swap the login page in)."""
    if hx:
        response = browser.get("/orgs/acme/links", headers=HX)
        assert response.status_code == 401
        assert response.headers["HX-Redirect"].startswith("/login?next=")
    else:
        response = browser.get("/orgs/acme/links")
        assert response.status_code == 302
        assert response.headers["Location"].startswith("/login?next=")


def assert_signed_in_answer(browser, hx: bool) -> None:
    """This browser gets the dashboard, as a page or as the htmx fragment."""
    response = browser.get("/orgs/acme/links", headers=HX if hx else None)
    assert response.status_code == 200


def session_rows(app, sub: str) -> list[UserSession]:
    """The server-side sessions of the user who signed in as `sub`, oldest first."""
    with app.app_context():
        return list(
            db.session.execute(
                db.select(UserSession)
                .join(UserSession.user)
                .filter(User.oidc_subject == sub)
                .order_by(UserSession.id)
            ).scalars()
        )


def is_open(app, session_id: int) -> bool:
    """Tell whether the server-side session has not ended."""
    with app.app_context():
        return db.session.get(UserSession, session_id).ended_at is None


def sign_in_at(provider: IdentityProvider, browser, sub: str):
    """Sign `browser` in through `provider` as `sub`; return the authorisation URL used."""
    provider.set_user(sub, email=f"{sub}@example.com", email_verified=True, name=sub.title())
    authorize_url = start_sign_in(browser)
    response = finish_sign_in(browser, provider.authorize(authorize_url, sub))
    assert response.status_code == 302
    return authorize_url


def id_token_claims(provider_url: str, id_token: str) -> dict:
    """The claims of an ID token, after checking its signature with the provider's keys."""
    discovery = requests.get(f"{provider_url}/.well-known/openid-configuration", timeout=5).json()
    keys = KeySet.import_key_set(requests.get(discovery["jwks_uri"], timeout=5).json())
    return jwt.decode(id_token, keys).claims


@pytest.fixture(scope="module")
def idp_without_logout():
    """A real provider whose discovery document names no end_session_endpoint, like the
    providers that do not offer RP-Initiated Logout."""
    provider = oidc_provider_mock.app(require_nonce=True)

    @provider.after_request
    def drop_end_session_endpoint(response):
        """Take end_session_endpoint out of the discovery document."""
        if provider_request.path == "/.well-known/openid-configuration":
            document = response.get_json()
            del document["end_session_endpoint"]
            response.set_data(provider.json.dumps(document))
        return response

    server = werkzeug.serving.make_server("127.0.0.1", 0, provider, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield IdentityProvider(f"http://127.0.0.1:{server.server_port}")
    server.shutdown()
    thread.join(5)


# --- signing in starts a server-side session -----------------------------------------


def test_sign_in_stores_the_token_hash_never_the_token(app, signed_in_client):
    browser = signed_in_client("ada")
    with browser.session_transaction() as cookie_session:
        token = cookie_session[SESSION_COOKIE_FIELD]
    [row] = session_rows(app, "ada")
    assert row.token_hash == hash_session_token(token)
    assert token not in (row.token_hash, row.id_token)
    assert row.ended_at is None


def test_session_lasts_as_long_as_the_app_says(app, signed_in_client):
    app.config["PERMANENT_SESSION_LIFETIME"] = timedelta(hours=3)
    signed_in_client("ada")
    [row] = session_rows(app, "ada")
    assert row.expires_at - row.created_at == timedelta(hours=3)


def test_session_keeps_the_id_token_issued_at_this_sign_in(app, client, idp):
    authorize_url = sign_in_at(idp, client, "ada")
    [row] = session_rows(app, "ada")
    claims = id_token_claims(idp.url, row.id_token)
    assert (claims["iss"], claims["sub"]) == (idp.url, "ada")
    # A single audience may come as a string or a one-item list, depending on the version.
    assert claims["aud"] in (CLIENT_ID, [CLIENT_ID])
    # The nonce ties the token to this very sign-in, not to an earlier one.
    assert [claims["nonce"]] == parse_qs(urlsplit(authorize_url).query)["nonce"]


def test_signing_in_again_forgets_ended_sessions(app, client, sign_in):
    sign_in("ada")
    sign_out(client)
    sign_in("ada")
    [row] = session_rows(app, "ada")
    assert row.ended_at is None


def test_a_signed_in_request_checks_its_session_with_one_select_and_no_writes(
    app, signed_in_client
):
    browser = signed_in_client("ada")
    with recorded_sql(app) as sent:
        assert browser.get("/orgs").status_code == 200
    touching_sessions = [s for s in sent if "user_sessions" in s.sql]
    assert len(touching_sessions) == 1
    [check] = touching_sessions
    assert check.sql.lstrip().upper().startswith("SELECT")
    assert "users" in check.sql.replace("user_sessions", "")
    assert not [s for s in sent if s.writes]


# --- a copied cookie stops working ------------------------------------------------------


@pytest.mark.parametrize("hx", [False, True], ids=["page", "htmx-fragment"])
def test_copied_cookie_is_refused_after_sign_out(app, signed_in_client, hx):
    browser = signed_in_client("ada")
    create_org_as(browser, "Acme")
    copy = copy_of_browser(app, browser)
    assert_signed_in_answer(copy, hx)

    assert sign_out(browser).status_code == 302

    assert_signed_out_answer(copy, hx)
    assert_signed_out_answer(browser, hx)


def test_refused_cookie_is_cleared(app, signed_in_client):
    browser = signed_in_client("ada")
    copy = copy_of_browser(app, browser)
    sign_out(browser)
    response = copy.get("/orgs")
    assert response.status_code == 302
    with copy.session_transaction() as cookie_session:
        assert "_user_id" not in cookie_session
        assert SESSION_COOKIE_FIELD not in cookie_session


@pytest.mark.parametrize("hx", [False, True], ids=["page", "htmx-fragment"])
def test_sign_out_everywhere_ends_the_sessions_of_other_browsers(
    app, signed_in_client, grant_role, hx
):
    laptop = signed_in_client("ada")
    create_org_as(laptop, "Acme")
    phone = signed_in_client("ada")
    stolen = copy_of_browser(app, phone)
    colleague = signed_in_client("grace")
    grant_role("acme", "grace", "member")
    for browser in (laptop, phone, stolen, colleague):
        assert_signed_in_answer(browser, hx)

    assert sign_out(laptop, "/logout/everywhere").status_code == 302

    for browser in (laptop, phone, stolen):
        assert_signed_out_answer(browser, hx)
    # Only Ada's sessions ended.
    assert_signed_in_answer(colleague, hx)
    assert all(row.ended_at is not None for row in session_rows(app, "ada"))


@pytest.mark.parametrize("hx", [False, True], ids=["page", "htmx-fragment"])
def test_expired_session_is_refused_even_with_a_good_cookie(app, signed_in_client, hx):
    browser = signed_in_client("ada")
    create_org_as(browser, "Acme")
    with app.app_context():
        row = db.session.execute(db.select(UserSession)).scalar_one()
        row.expires_at = utcnow() + timedelta(minutes=1)
        db.session.commit()
        assert_signed_in_answer(browser, hx)
        row.expires_at = utcnow() - timedelta(seconds=1)
        db.session.commit()
    assert_signed_out_answer(browser, hx)


def test_cookie_without_a_server_side_session_is_refused(app, client, sign_in):
    # A cookie signed with our key that names a user but no session, as cookies made
    # before sessions ended on the server did.
    sign_in("ada")
    with app.app_context():
        ada = db.session.execute(db.select(User)).scalar_one()
    forged = app.test_client()
    with forged.session_transaction() as cookie_session:
        cookie_session["_user_id"] = str(ada.id)
        cookie_session["_fresh"] = True
    assert forged.get("/orgs").status_code == 302


def test_token_of_another_user_does_not_sign_in_as_this_one(app, signed_in_client):
    ada = signed_in_client("ada")
    grace = signed_in_client("grace")
    with grace.session_transaction() as cookie_session:
        graces_user_id = cookie_session["_user_id"]
    with ada.session_transaction() as cookie_session:
        cookie_session["_user_id"] = graces_user_id
    assert ada.get("/orgs").status_code == 302


# --- the sign-out buttons -------------------------------------------------------------


def test_header_offers_sign_out_and_sign_out_everywhere(signed_in_client):
    page = signed_in_client("ada").get("/orgs").get_data(as_text=True)
    token = csrf_token_from(page)
    for action in ("/logout", "/logout/everywhere"):
        form = re.search(rf'<form method="post" action="{action}"[^>]*>(.*?)</form>', page, re.S)
        assert form, f"no form posting to {action}"
        assert f'name="csrf_token" value="{token}"' in form.group(1)
    assert ">Sign out everywhere</button>" in page


def test_sign_out_everywhere_requires_post(signed_in_client):
    browser = signed_in_client("ada")
    assert browser.get("/logout/everywhere").status_code == 405
    assert browser.get("/orgs").status_code == 200


def test_sign_out_everywhere_without_csrf_token_is_refused(app, signed_in_client):
    browser = signed_in_client("ada")
    other = signed_in_client("ada")
    response = browser.post("/logout/everywhere")
    assert response.status_code == 400
    assert "CSRF" in response.get_data(as_text=True)
    assert browser.get("/orgs").status_code == 200
    assert other.get("/orgs").status_code == 200


def test_sign_out_everywhere_needs_a_signed_in_browser(client):
    response = client.post("/logout/everywhere", data={"csrf_token": csrf_token(client, "/")})
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")


def test_signing_out_a_browser_already_signed_out_elsewhere_goes_home(app, signed_in_client):
    laptop = signed_in_client("ada")
    phone = signed_in_client("ada")
    # The phone still shows a page with its sign-out button from before.
    phones_token = csrf_token(phone)
    sign_out(laptop, "/logout/everywhere")

    response = phone.post("/logout", data={"csrf_token": phones_token})

    # Home, not the provider: the ended session's ID token goes to nobody.
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    assert SIGNED_OUT in phone.get("/").get_data(as_text=True)


# --- RP-Initiated Logout at the provider ------------------------------------------------


@pytest.mark.parametrize("path", ["/logout", "/logout/everywhere"])
def test_sign_out_continues_at_the_providers_end_session_endpoint(app, client, idp, sign_in, path):
    sign_in("ada")
    [row] = session_rows(app, "ada")
    discovery = requests.get(f"{idp.url}/.well-known/openid-configuration", timeout=5).json()

    response = sign_out(client, path)

    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    endpoint = urlsplit(discovery["end_session_endpoint"])
    assert (location.scheme, location.netloc, location.path) == (
        endpoint.scheme,
        endpoint.netloc,
        endpoint.path,
    )
    params = parse_qs(location.query)
    assert params["id_token_hint"] == [row.id_token]
    assert params["post_logout_redirect_uri"] == ["http://localhost/"]
    assert params["client_id"] == [CLIENT_ID]
    assert not is_open(app, row.id)


def test_provider_sends_the_browser_home_where_it_reads_signed_out(app, client, idp, sign_in):
    sign_in("ada")
    end_session_url = sign_out(client).headers["Location"]

    # The provider's own pages, as the browser would see them.
    confirm_page = requests.get(end_session_url, timeout=5)
    assert confirm_page.status_code == 200
    form = re.search(r'<form method="post" action="([^"]+)"', confirm_page.text)
    landing = re.search(r'name="redirect_uri" value="([^"]+)"', confirm_page.text)
    assert form
    assert landing
    confirmed = requests.post(
        f"{idp.url}{form.group(1)}",
        data={"redirect_uri": landing.group(1)},
        allow_redirects=False,
        timeout=5,
    )
    assert confirmed.status_code == 302
    back_home = urlsplit(confirmed.headers["Location"])
    assert (back_home.netloc, back_home.path) == ("localhost", "/")

    home = client.get(back_home.path)
    assert home.status_code == 200
    page = home.get_data(as_text=True)
    assert SIGNED_OUT in page
    assert ">Sign in</a>" in page


def test_htmx_sign_out_sends_the_whole_window_to_the_provider(app, client, sign_in):
    sign_in("ada")
    response = client.post(
        "/logout", headers={**HX, "X-CSRFToken": csrf_token(client)}, follow_redirects=False
    )
    assert response.status_code == 204
    assert "/oauth2/end_session?" in response.headers["HX-Redirect"]
    assert "HX-Request" in response.vary
    assert SIGNED_OUT in client.get("/").get_data(as_text=True)


def test_provider_without_end_session_endpoint_signs_out_here_and_goes_home(
    make_app, idp_without_logout
):
    app = make_app(OIDC_ISSUER=idp_without_logout.url)
    browser = app.test_client()
    sign_in_at(idp_without_logout, browser, "ada")
    copy = copy_of_browser(app, browser)
    assert browser.get("/orgs").status_code == 200

    response = sign_out(browser)

    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    assert SIGNED_OUT in browser.get("/").get_data(as_text=True)
    assert copy.get("/orgs").status_code == 302


def test_htmx_sign_out_without_end_session_endpoint_goes_home(make_app, idp_without_logout):
    app = make_app(OIDC_ISSUER=idp_without_logout.url)
    browser = app.test_client()
    sign_in_at(idp_without_logout, browser, "ada")
    response = browser.post("/logout", headers={**HX, "X-CSRFToken": csrf_token(browser)})
    assert response.status_code == 204
    assert response.headers["HX-Redirect"] == "/"
    assert browser.get("/orgs").status_code == 302


def test_unreachable_provider_at_sign_out_still_signs_out_here(app, make_app, signed_in_client):
    browser = signed_in_client("ada")
    # Another worker, which has not read the discovery document yet, and the provider is down.
    other_worker = make_app(OIDC_ISSUER="http://127.0.0.1:1")
    same_browser = copy_of_browser(other_worker, browser)
    assert same_browser.get("/orgs").status_code == 200

    response = sign_out(same_browser)

    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    assert SIGNED_OUT in same_browser.get("/").get_data(as_text=True)
    assert browser.get("/orgs").status_code == 302
