"""Users as identified by their OpenID Connect provider."""

from app.extensions import db
from app.models import User, utcnow
from app.services.errors import InvalidInput
from app.services.text import has_invisible_characters, strip_invisible

# The columns' sizes: a longer subject is no identity we can store, a longer email no
# address at all (RFC 5321 allows 320 characters), a longer name is cut.
MAX_SUBJECT_LENGTH = 255
MAX_EMAIL_LENGTH = 320
MAX_NAME_LENGTH = 200


def clean_subject(raw: object) -> str:
    """The ID token's subject as stored, or InvalidInput when it can not be one.

    The subject is the identity, so it is never altered: one that is too long or holds
    control or invisible characters (PostgreSQL can not store a NUL) is refused.
    """
    subject = raw if isinstance(raw, str) else ""
    if not subject or len(subject) > MAX_SUBJECT_LENGTH or has_invisible_characters(subject):
        raise InvalidInput("Sign-in failed: the identity provider sent an unusable user id.")
    return subject


def clean_email_claim(raw: object) -> str | None:
    """The email claim lower-cased, or None when it is missing or could not be an address.

    Dropped rather than cleaned: an address with a character removed is somebody else's.
    """
    if not isinstance(raw, str):
        return None
    email = raw.strip().lower()
    if (
        not email
        or len(email) > MAX_EMAIL_LENGTH
        or email.count("@") != 1
        or any(char.isspace() for char in email)
        or has_invisible_characters(email)
    ):
        return None
    return email


def sign_in_from_claims(issuer: str, claims: dict) -> User:
    """Find or create the user for the ID token's (issuer, subject) and refresh their profile.

    The identity is (iss, sub) and never the email: an email can be reassigned or
    unverified, a subject cannot. Raises InvalidInput for a subject that can not be stored.
    """
    subject = clean_subject(claims.get("sub"))
    user = db.session.execute(
        db.select(User).filter_by(oidc_issuer=issuer, oidc_subject=subject)
    ).scalar_one_or_none()
    if user is None:
        user = User(oidc_issuer=issuer, oidc_subject=subject)
        db.session.add(user)
    user.email = clean_email_claim(claims.get("email"))
    # Only an address we kept can be verified.
    user.email_verified = user.email is not None and claims.get("email_verified") is True
    user.name = strip_invisible(claims.get("name"), max_length=MAX_NAME_LENGTH)
    user.last_login_at = utcnow()
    return user
