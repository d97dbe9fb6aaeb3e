"""Server-side sessions: each signed-in browser is a row that signing out ends.

The session cookie carries a random token under SESSION_COOKIE_FIELD; only its SHA-256 is
stored, so reading the database gives nobody a working cookie. A cookie counts only while
its row is not ended and not expired, which is what makes signing out, "Sign out
everywhere" and the session lifetime hold even for a copied cookie.
"""

import hashlib
import secrets
from datetime import datetime, timedelta

from app.extensions import db
from app.models import User, UserSession

# The field of Flask's (signed) session cookie that carries the browser's session token.
SESSION_COOKIE_FIELD = "sid"


def hash_session_token(token: str) -> str:
    """The SHA-256 (hex) under which a session token is stored."""
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(
    user: User, *, now: datetime, lifetime: timedelta, id_token: str | None = None
) -> str:
    """Open a session for `user` until `now + lifetime`; return its token for the cookie.

    The user's sessions that already ended or expired are deleted here: they can never
    sign anyone in again, and their ID tokens have no reason to stay.
    """
    # A user signing in for the first time gets their id here.
    db.session.flush()
    db.session.execute(
        db.delete(UserSession).where(
            UserSession.user_id == user.id,
            (UserSession.ended_at.is_not(None)) | (UserSession.expires_at <= now),
        )
    )
    token = secrets.token_urlsafe(32)
    db.session.add(
        UserSession(
            user=user,
            token_hash=hash_session_token(token),
            created_at=now,
            expires_at=now + lifetime,
            id_token=id_token,
        )
    )
    return token


def find_signed_in_user(user_id: int, token: object, *, now: datetime) -> User | None:
    """The user a cookie signs in, or None when its session ended, expired or is not theirs.

    One SELECT joining the user to the session found by its unique token hash: this runs
    on every signed-in request.
    """
    if not isinstance(token, str) or not token:
        return None
    return db.session.execute(
        db.select(User)
        .join(UserSession, UserSession.user_id == User.id)
        .where(
            User.id == user_id,
            UserSession.token_hash == hash_session_token(token),
            UserSession.ended_at.is_(None),
            UserSession.expires_at > now,
        )
    ).scalar_one_or_none()


def end_session(token: object, *, now: datetime) -> UserSession | None:
    """End the live session a cookie's token names; return it, or None when none was live.

    A session that already ended or expired is left alone and not returned: its ID token
    goes to nobody, not even to a replayed copy of its cookie signing out.
    """
    if not isinstance(token, str) or not token:
        return None
    user_session = db.session.execute(
        db.select(UserSession).where(
            UserSession.token_hash == hash_session_token(token),
            UserSession.ended_at.is_(None),
            UserSession.expires_at > now,
        )
    ).scalar_one_or_none()
    if user_session is not None:
        user_session.ended_at = now
    return user_session


def end_all_sessions(user_id: int, *, now: datetime) -> int:
    """End every open session of a user ("Sign out everywhere"); return how many ended."""
    result = db.session.execute(
        db.update(UserSession)
        .where(UserSession.user_id == user_id, UserSession.ended_at.is_(None))
        .values(ended_at=now)
    )
    return result.rowcount
