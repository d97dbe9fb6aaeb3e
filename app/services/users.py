"""Users as identified by their OpenID Connect provider."""

from app.extensions import db
from app.models import User, utcnow


def sign_in_from_claims(issuer: str, claims: dict) -> User:
    """Find or create the user for the ID token's (issuer, subject) and refresh their profile.

    The identity is (iss, sub) and never the email: an email can be reassigned or
    unverified, a subject cannot.
    """
    subject = str(claims["sub"])
    user = db.session.execute(
        db.select(User).filter_by(oidc_issuer=issuer, oidc_subject=subject)
    ).scalar_one_or_none()
    if user is None:
        user = User(oidc_issuer=issuer, oidc_subject=subject)
        db.session.add(user)
    email = claims.get("email")
    user.email = email.strip().lower() if isinstance(email, str) and email.strip() else None
    user.email_verified = claims.get("email_verified") is True
    name = claims.get("name")
    user.name = name.strip()[:200] if isinstance(name, str) and name.strip() else None
    user.last_login_at = utcnow()
    return user
