"""Views for /login, /auth/callback and /logout."""

import logging
from urllib.parse import urlsplit

import requests
from authlib.common.errors import AuthlibBaseError
from flask import abort, current_app, flash, redirect, request, session, url_for
from flask_login import current_user, login_required, login_user, logout_user
from joserfc.errors import JoseError

from app.blueprints.auth import bp
from app.extensions import db
from app.services.members import join_orgs_by_email_domain
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
    db.session.commit()
    # A new session for the signed-in user: nothing from before sign-in carries over.
    session.clear()
    login_user(user)
    session.permanent = True
    for name in joined:
        flash(f"You joined {name}: your email domain is allowed there.", "info")
    return redirect(next_path or url_for("orgs.home"))


@bp.post("/logout")
@login_required
def logout():
    """Sign out and drop the whole session."""
    logout_user()
    session.clear()
    flash("You are signed out.", "info")
    return redirect(url_for("orgs.home"))
