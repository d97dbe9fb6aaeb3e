"""Configuration read from the environment, with the fixes Heroku-style URLs need."""

import os
from datetime import timedelta

# Values that look like a key but are not one; refusing them catches copy-pasted examples.
_KNOWN_WEAK_KEYS = {"dev", "development", "changeme", "secret", "secret-key", "please-change-me"}
MIN_SECRET_KEY_LENGTH = 32
# Without these nobody can sign in; the client secret may be empty (a public client with PKCE).
REQUIRED_OIDC_SETTINGS = ("OIDC_ISSUER", "OIDC_CLIENT_ID")


def normalise_database_url(url: str) -> str:
    """Point postgres URLs at the psycopg 3 driver, as Heroku hands out `postgres://`."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def is_strong_secret_key(key: object) -> bool:
    """Tell whether a SECRET_KEY is long and not a well-known placeholder."""
    if isinstance(key, bytes):
        key = key.decode("latin-1")
    if not isinstance(key, str):
        return False
    return len(key) >= MIN_SECRET_KEY_LENGTH and key.lower() not in _KNOWN_WEAK_KEYS


def missing_oidc_settings(config) -> list[str]:
    """Name the OIDC settings sign-in needs that are empty or unset."""
    return [name for name in REQUIRED_OIDC_SETTINGS if not str(config.get(name) or "").strip()]


def config_from_environment() -> dict:
    """Build the app's settings from environment variables (and `.env` in development)."""
    settings = {
        "SECRET_KEY": os.environ.get("SECRET_KEY"),
        "OIDC_ISSUER": os.environ.get("OIDC_ISSUER", "").rstrip("/"),
        "OIDC_CLIENT_ID": os.environ.get("OIDC_CLIENT_ID", ""),
        "OIDC_CLIENT_SECRET": os.environ.get("OIDC_CLIENT_SECRET", ""),
        "SHORT_BASE_URL": os.environ.get("SHORT_BASE_URL", "").rstrip("/"),
        # The provider may share our host on another port (locally it does), and cookies
        # are not isolated by port, so our session cookie needs a name of its own.
        "SESSION_COOKIE_NAME": "linkdeck_session",
        "SESSION_COOKIE_HTTPONLY": True,
        # Lax, not Strict: the OIDC callback is a cross-site top-level GET that must carry
        # the session holding Authlib's state.
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": os.environ.get("SESSION_COOKIE_SECURE", "false").lower() == "true",
        "PERMANENT_SESSION_LIFETIME": timedelta(hours=12),
        "MAX_CONTENT_LENGTH": 64 * 1024,
        # Dashboards stay open all day; a token valid for the whole session avoids
        # random CSRF failures on long-lived pages.
        "WTF_CSRF_TIME_LIMIT": None,
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True},
        # The header a CDN in front of us sets to the visitor's country (e.g. CF-IPCountry).
        # Unset by default: any client can send such a header, so it is read only when a
        # proxy we trust is known to overwrite it.
        "COUNTRY_HEADER": os.environ.get("COUNTRY_HEADER", "").strip() or None,
        # Rate limits. Memory storage is per process, so production points this at Redis to
        # share the counts between workers and dynos.
        "RATELIMIT_STORAGE_URI": os.environ.get("RATELIMIT_STORAGE_URI", "memory://"),
        # No X-RateLimit headers on every redirect; a 429 says when to retry (see
        # register_errorhandlers).
        "RATELIMIT_HEADERS_ENABLED": False,
        # A limiter store that is down must not take redirects down with it: count in
        # memory until it is back.
        "RATELIMIT_SWALLOW_ERRORS": True,
        "RATELIMIT_IN_MEMORY_FALLBACK_ENABLED": True,
        # Creating links, per person: plenty for people, a brake on a runaway script.
        "LINK_CREATE_LIMIT": "30 per minute;1000 per day",
        # Unknown short links, per client IP: guessing slugs is what this slows down.
        "UNKNOWN_SLUG_LIMIT": "60 per minute",
    }
    if os.environ.get("DATABASE_URL"):
        settings["SQLALCHEMY_DATABASE_URI"] = normalise_database_url(os.environ["DATABASE_URL"])
    return settings
