"""Sign-in through the real OIDC provider: state, nonce, PKCE, next, identity by (iss, sub)."""

import base64
import hashlib
import logging
import re
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import pytest
import requests

from app.blueprints.auth.views import safe_next_path
from app.extensions import db
from app.models import User
from tests.conftest import csrf_token, finish_sign_in, start_sign_in


def user_count(app) -> int:
    with app.app_context():
        return db.session.execute(db.select(db.func.count(User.id))).scalar_one()


def is_signed_in(client) -> bool:
    return client.get("/orgs").status_code == 200


def assert_nobody_signed_in(app, client) -> None:
    """No user row was written and this browser is sent to sign in, as a stranger would be."""
    assert user_count(app) == 0
    response = client.get("/orgs")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")


def refusal_reasons(caplog) -> list[str]:
    """What the callback logged when it refused a sign-in."""
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "app.blueprints.auth.views"
        and record.getMessage().startswith("sign-in refused")
    ]


def test_login_redirects_to_provider_with_pkce_state_and_nonce(client, idp):
    params = parse_qs(urlsplit(start_sign_in(client)).query)
    assert params["code_challenge_method"] == ["S256"]
    assert params["code_challenge"][0]
    assert params["state"][0]
    assert params["nonce"][0]
    assert params["redirect_uri"] == ["http://localhost/auth/callback"]


def test_token_request_proves_the_pkce_verifier(client, idp):
    idp.set_user("ada", email="ada@example.com", email_verified=True)
    authorize_url = start_sign_in(client)
    sent = parse_qs(urlsplit(authorize_url).query)
    # The verifier is the secret: it never travels through the browser.
    assert "code_verifier" not in sent
    callback = idp.authorize(authorize_url, "ada")
    code = parse_qs(urlsplit(callback).query)["code"][0]
    assert finish_sign_in(client, callback).status_code == 302

    [token_request] = [r for r in idp.token_requests if r.get("code") == code]
    assert token_request["grant_type"] == "authorization_code"
    verifier = token_request["code_verifier"]
    assert re.fullmatch(r"[A-Za-z0-9\-._~]{43,128}", verifier)  # RFC 7636 section 4.1
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    assert base64.urlsafe_b64encode(digest).rstrip(b"=").decode() == sent["code_challenge"][0]
    assert sent["code_challenge_method"] == ["S256"]


def test_sign_in_creates_user_from_id_token(app, client, sign_in, idp):
    response = sign_in("ada", email="Ada@Example.com", name="Ada Lovelace")
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    assert is_signed_in(client)
    with app.app_context():
        user = db.session.execute(db.select(User)).scalar_one()
        assert (user.oidc_issuer, user.oidc_subject) == (idp.url, "ada")
        assert user.email == "ada@example.com"
        assert user.email_verified is True
        assert user.name == "Ada Lovelace"
    assert "Ada Lovelace" in client.get("/orgs").get_data(as_text=True)


@pytest.mark.parametrize("state", [None, "forged-state"])
def test_callback_with_missing_or_wrong_state_is_refused(app, client, idp, caplog, state):
    caplog.set_level(logging.WARNING)
    idp.set_user("mallory", email="mallory@example.com", email_verified=True)
    callback = urlsplit(idp.authorize(start_sign_in(client), "mallory"))
    query = parse_qs(callback.query)
    if state is None:
        del query["state"]
    else:
        query["state"] = [state]
    response = client.get(callback.path, query_string=urlencode(query, doseq=True))
    assert response.status_code == 400
    assert "Sign-in failed" in response.get_data(as_text=True)
    [reason] = refusal_reasons(caplog)
    assert "mismatching_state" in reason
    assert_nobody_signed_in(app, client)


def test_replayed_callback_is_refused(app, client, idp):
    idp.set_user("ada", email="ada@example.com", email_verified=True)
    callback = idp.authorize(start_sign_in(client), "ada")
    assert finish_sign_in(client, callback).status_code == 302
    client.post("/logout", data={"csrf_token": csrf_token(client)})
    assert finish_sign_in(client, callback).status_code == 400
    assert not is_signed_in(client)


def test_id_token_with_wrong_nonce_is_refused(app, client, idp, caplog):
    caplog.set_level(logging.WARNING)
    idp.set_user("eve", email="eve@example.com", email_verified=True)
    authorize = urlsplit(start_sign_in(client))
    query = parse_qs(authorize.query)
    query["nonce"] = ["a-nonce-this-session-never-issued"]
    tampered = urlunsplit(authorize._replace(query=urlencode(query, doseq=True)))
    response = finish_sign_in(client, idp.authorize(tampered, "eve"))
    assert response.status_code == 400
    [reason] = refusal_reasons(caplog)
    # Authlib words it "Invalid claim: 'nonce'" (1.9, Python 3.12+) or without the colon (1.6).
    assert "invalid_claim" in reason
    assert "'nonce'" in reason
    assert_nobody_signed_in(app, client)


@pytest.mark.parametrize(
    ("setting", "expected", "claim"),
    [
        # The provider signs a token for the client that asked; we expect another audience.
        ("OIDC_CLIENT_ID", "another-client", "aud"),
        # The token comes from a provider other than the one we trust (a mix-up).
        ("OIDC_ISSUER", "https://evil.example", "iss"),
    ],
    ids=["wrong-audience", "wrong-issuer"],
)
def test_id_token_for_another_audience_or_issuer_is_refused(
    app, client, idp, caplog, setting, expected, claim
):
    caplog.set_level(logging.WARNING)
    idp.set_user("eve", email="eve@example.com", email_verified=True)
    authorize_url = start_sign_in(client)
    app.config[setting] = expected
    response = finish_sign_in(client, idp.authorize(authorize_url, "eve"))
    assert response.status_code == 400
    assert "Sign-in failed" in response.get_data(as_text=True)
    [reason] = refusal_reasons(caplog)
    assert "invalid_claim" in reason
    assert f"'{claim}'" in reason
    assert_nobody_signed_in(app, client)


def test_provider_denial_signs_nobody_in(app, client, idp):
    denied = requests.post(
        start_sign_in(client), data={"action": "deny"}, allow_redirects=False, timeout=5
    )
    response = finish_sign_in(client, denied.headers["Location"])
    assert response.status_code == 302
    assert user_count(app) == 0
    assert not is_signed_in(client)


@pytest.mark.parametrize(
    "next_value",
    [
        "//evil.example",
        "https://evil.example",
        "/\\evil.example",
        "\\/evil.example",
        "javascript:alert(1)",
        "http:evil.example",
        "\t//evil.example",
        "/\t/evil.example",
    ],
)
def test_unsafe_next_ends_on_a_local_page(client, sign_in, next_value):
    response = sign_in("ada", next_path=next_value)
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location == "/"
    assert not urlsplit(location).netloc


def test_local_next_is_followed_after_sign_in(client, sign_in):
    response = sign_in("ada", next_path="/orgs?tab=mine")
    assert response.headers["Location"] == "/orgs?tab=mine"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/orgs/acme/links?page=2", "/orgs/acme/links?page=2"),
        ("/", "/"),
        ("", None),
        (None, None),
        ("//evil.example", None),
        ("/\\evil.example", None),
        ("https://evil.example/", None),
        ("/a b", None),
        ("/a\r\nSet-Cookie: x=1", None),
    ],
)
def test_safe_next_path(value, expected):
    assert safe_next_path(value) == expected


def test_same_email_with_another_subject_is_another_user(app, client, sign_in, idp):
    sign_in("victim", email="shared@example.com", name="Victim")
    client.post("/logout", data={"csrf_token": csrf_token(client)})
    sign_in("attacker", email="shared@example.com", name="Attacker")
    page = client.get("/orgs").get_data(as_text=True)
    assert "Attacker" in page
    assert "Victim" not in page
    with app.app_context():
        subjects = sorted(db.session.execute(db.select(User.oidc_subject)).scalars())
    assert subjects == ["attacker", "victim"]


def test_unverified_email_is_stored_as_unverified(app, sign_in):
    sign_in("ada", email_verified=False)
    with app.app_context():
        assert db.session.execute(db.select(User)).scalar_one().email_verified is False


def test_sign_in_starts_a_fresh_session(client, sign_in):
    with client.session_transaction() as session:
        session["planted"] = "by an attacker"
    sign_in("ada")
    with client.session_transaction() as session:
        assert "planted" not in session
        assert "_user_id" in session


def test_logout_requires_post(client, sign_in):
    sign_in("ada")
    response = client.get("/logout")
    assert response.status_code == 405
    assert is_signed_in(client)


def test_logout_without_csrf_token_is_refused(client, sign_in):
    sign_in("ada")
    response = client.post("/logout")
    assert response.status_code == 400
    assert "CSRF" in response.get_data(as_text=True)
    assert is_signed_in(client)


def test_logout_ends_the_session(client, sign_in):
    sign_in("ada")
    response = client.post("/logout", data={"csrf_token": csrf_token(client)})
    assert response.status_code == 302
    assert client.get("/orgs").status_code == 302
    assert "Sign in" in client.get("/").get_data(as_text=True)


def test_session_cookie_has_its_own_name_and_is_lax(app, client, sign_in):
    response = sign_in("ada")
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("linkdeck_session=")
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie


def test_signed_out_user_is_sent_to_login_with_next(client):
    response = client.get("/orgs")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")


def test_unreachable_provider_answers_503(app_config):
    from app import create_app

    app = create_app({**app_config, "OIDC_ISSUER": "http://127.0.0.1:1"})
    response = app.test_client().get("/login")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "30"
    assert "identity provider could not be reached" in response.get_data(as_text=True)
