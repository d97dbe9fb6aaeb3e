"""Views for /login, /auth/callback, /logout and /logout/everywhere."""

import logging
from urllib.parse import urlsplit

import requests
from authlib.common.errors import AuthlibBaseError
from authlib.common.urls import add_params_to_uri
from flask import abort, current_app, flash, redirect, request, session, url_for
from flask_login import current_user, login_required, login_user, logout_user
from joserfc.errors import JoseError

from app.blueprints.auth import bp
from app.extensions import db
from app.htmx import redirect_after_change
from app.models import utcnow
from app.services.members import join_orgs_by_email_domain
from app.services.sessions import (
    SESSION_COOKIE_FIELD,
    end_all_sessions,
    end_session,
    start_session,
)
from app.services.users import sign_in_from_claims

log = logging.getLogger(__name__)
_NEXT_KEY = "login_next"


def safe_next_path(value: str | None) -> str | None:
    """Return `value` if it is a path on this site, else None.

    Only a single leading slash is allowed: `//host` and `/\\host` are read by
    browsers as another host, and anything with a scheme or control characters is refused.
    """
    if not value or not value.startswith("/") or value.startswith(("//", "/\\")):
        return None
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 or ch == "\\" for ch in value):
        return None
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return None
    return value


def _provider_unreachable():
    """Answer 503 when the identity provider cannot be reached; it is not the user's fault."""
    log.exception("identity provider unreachable")
    abort(
        503,
        description="The identity provider could not be reached. Try again in a minute.",
        retry_after=30,
    )


@bp.get("/login")
def login():
    """Start the OIDC authorisation code flow (PKCE S256, state and nonce by Authlib)."""
    if current_user.is_authenticated:
        return redirect(safe_next_path(request.args.get("next")) or url_for("orgs.home"))
    # Kept server-side in the session, never round-tripped through the provider.
    session[_NEXT_KEY] = safe_next_path(request.args.get("next"))
    try:
        return current_app.extensions["oidc"].authorize_redirect(
            url_for("auth.callback", _external=True)
        )
    except requests.RequestException:
        _provider_unreachable()


@bp.get("/auth/callback")
def callback():
    """Finish sign-in: check the ID token, find the user by (iss, sub), start a new session."""
    if "error" in request.args:
        flash("Sign-in was cancelled at the identity provider.", "error")
        return redirect(url_for("orgs.home"))
    issuer = current_app.config["OIDC_ISSUER"]
    try:
        token = current_app.extensions["oidc"].authorize_access_token(
            claims_options={
                "iss": {"essential": True, "value": issuer},
                "aud": {"essential": True, "value": current_app.config["OIDC_CLIENT_ID"]},
            }
        )
    except requests.RequestException:
        _provider_unreachable()
    except (AuthlibBaseError, JoseError) as error:
        log.warning("sign-in refused: %s", error)
        abort(
            400,
            description="Sign-in failed: the response from the identity provider was not valid.",
        )
    claims = token.get("userinfo") or {}
    if not claims.get("sub"):
        abort(400, description="Sign-in failed: the identity provider sent no ID token.")
    next_path = safe_next_path(session.get(_NEXT_KEY))
    user = sign_in_from_claims(issuer, claims)
    joined = [org.name for org in join_orgs_by_email_domain(user)]
    session_token = start_session(
        user,
        now=utcnow(),
        lifetime=current_app.permanent_session_lifetime,
        id_token=token.get("id_token"),
    )
    db.session.commit()
    # A new session for the signed-in user: nothing from before sign-in carries over.
    session.clear()
    login_user(user)
    session[SESSION_COOKIE_FIELD] = session_token
    session.permanent = True
    for name in joined:
        flash(f"You joined {name}: your email domain is allowed there.", "info")
    return redirect(next_path or url_for("orgs.home"))


@bp.post("/logout")
def logout():
    """Sign out: end this browser's session here, then at the provider where it offers that.

    Not login_required: a browser whose session already ended (signed out elsewhere,
    expired) is signed out all the same, instead of being sent to sign in first.
    """
    ended = end_session(session.get(SESSION_COOKIE_FIELD), now=utcnow())
    id_token = ended.id_token if ended else None
    db.session.commit()
    return _signed_out(id_token, "You are signed out.")


@bp.post("/logout/everywhere")
@login_required
def logout_everywhere():
    """Sign out every browser of the signed-in user, this one included."""
    now = utcnow()
    this_session = end_session(session.get(SESSION_COOKIE_FIELD), now=now)
    id_token = this_session.id_token if this_session else None
    end_all_sessions(current_user.id, now=now)
    db.session.commit()
    return _signed_out(id_token, "You are signed out on every browser.")


def _signed_out(id_token: str | None, message: str):
    """Drop this browser's session and send it home, by way of the provider's sign-out.

    The message is flashed into the fresh session, so the home page shows it, also after
    the round trip through the provider.
    """
    logout_user()
    session.clear()
    flash(message, "info")
    destination = _provider_sign_out_url(id_token) if id_token else None
    return redirect_after_change(destination or url_for("orgs.home"))


def _provider_sign_out_url(id_token: str) -> str | None:
    """The provider's end-session URL for this browser (OIDC RP-Initiated Logout), or None.

    None when the discovery document names no end_session_endpoint, or the provider can
    not be reached: our session has ended already, and that must not turn into an error.
    No `state`: the landing page is home, which acts on nothing the provider sends back.
    """
    try:
        metadata = current_app.extensions["oidc"].load_server_metadata()
    except requests.RequestException as error:
        log.warning(
            "identity provider unreachable at sign-out (%s); signed out here only",
            type(error).__name__,
        )
        return None
    endpoint = metadata.get("end_session_endpoint")
    if not endpoint:
        return None
    return add_params_to_uri(
        endpoint,
        {
            "id_token_hint": id_token,
            # Names the client whose registered URIs the provider checks the landing against.
            "client_id": current_app.config["OIDC_CLIENT_ID"],
            "post_logout_redirect_uri": url_for("orgs.home", _external=True),
        },
    )
