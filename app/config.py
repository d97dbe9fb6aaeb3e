"""Configuration read from the environment, with the fixes Heroku-style URLs need."""

import os
from datetime import timedelta
from urllib.parse import urlsplit

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


def _int_setting(name: str, default: int) -> int:
    """An integer environment variable, or `default` when it is unset or blank."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise RuntimeError(f"{name} must be a whole number, not {raw!r}.") from None


def _list_setting(name: str) -> list[str]:
    """A comma-separated environment variable as a list of its non-blank items."""
    return [item.strip() for item in os.environ.get(name, "").split(",") if item.strip()]


def config_from_environment() -> dict:
    """Build the app's settings from environment variables (and `.env` in development)."""
    settings = {
        "SECRET_KEY": os.environ.get("SECRET_KEY"),
        "OIDC_ISSUER": os.environ.get("OIDC_ISSUER", "").rstrip("/"),
        "OIDC_CLIENT_ID": os.environ.get("OIDC_CLIENT_ID", ""),
        "OIDC_CLIENT_SECRET": os.environ.get("OIDC_CLIENT_SECRET", ""),
        "SHORT_BASE_URL": os.environ.get("SHORT_BASE_URL", "").rstrip("/"),
        # Where people open the dashboard (e.g. https://links.acme.com); with SHORT_BASE_URL
        # it names the hosts this app answers for (see trusted_hosts).
        "APP_BASE_URL": os.environ.get("APP_BASE_URL", "").rstrip("/"),
        # Host names the app answers for; any other Host header gets 400, so a forged one can
        # not steer the OIDC redirect_uri or the short links we print. Empty: derived.
        "TRUSTED_HOSTS": _list_setting("TRUSTED_HOSTS"),
        # How many proxies in front of us append to X-Forwarded-For (Heroku's router: 1).
        # 0 trusts none, so a client can not choose the IP it is counted and limited as.
        "TRUSTED_PROXIES": _int_setting("TRUSTED_PROXIES", 0),
        # Seconds to wait for a new database connection or for a pooled one to answer a
        # ping, and milliseconds a statement or a lock may take: a frozen or locked database
        # answers 503 instead of hanging the worker until gunicorn kills it (--timeout 25).
        "DATABASE_CONNECT_TIMEOUT": _int_setting("DATABASE_CONNECT_TIMEOUT", 4),
        "DATABASE_PING_TIMEOUT": _int_setting("DATABASE_PING_TIMEOUT", 2),
        "DATABASE_STATEMENT_TIMEOUT_MS": _int_setting("DATABASE_STATEMENT_TIMEOUT_MS", 5000),
        "DATABASE_LOCK_TIMEOUT_MS": _int_setting("DATABASE_LOCK_TIMEOUT_MS", 3000),
        # Seconds a CSV export may stream before it stops (logged as event=export_cut_off).
        # Its worker keeps telling gunicorn it is alive meanwhile, so --timeout does not
        # cut it; every query of it is short and stays within the statement timeout.
        "EXPORT_TIMEOUT_SECONDS": _int_setting("EXPORT_TIMEOUT_SECONDS", 600),
        # The provider may share our host on another port (locally it does), and cookies
        # are not isolated by port, so our session cookie needs a name of its own.
        "SESSION_COOKIE_NAME": "linkdeck_session",
        "SESSION_COOKIE_HTTPONLY": True,
        # Lax, not Strict: the OIDC callback is a cross-site top-level GET that must carry
        # the session holding Authlib's state.
        "SESSION_COOKIE_SAMESITE": "Lax",
        # Secure cookies also take the __Host- prefix (see secure_cookie_name).
        "SESSION_COOKIE_SECURE": os.environ.get("SESSION_COOKIE_SECURE", "false").lower() == "true",
        "PERMANENT_SESSION_LIFETIME": timedelta(hours=12),
        "MAX_CONTENT_LENGTH": 64 * 1024,
        # Dashboards stay open all day; a token valid for the whole session avoids
        # random CSRF failures on long-lived pages.
        "WTF_CSRF_TIME_LIMIT": None,
        # The header a CDN in front of us sets to the visitor's country (e.g. CF-IPCountry).
        # Unset by default: any client can send such a header, so it is read only when a
        # proxy we trust is known to overwrite it.
        "COUNTRY_HEADER": os.environ.get("COUNTRY_HEADER", "").strip() or None,
        # Rate limits. Memory storage is per process, so production points this at Redis to
        # share the counts between workers and dynos.
        "RATELIMIT_STORAGE_URI": os.environ.get("RATELIMIT_STORAGE_URI", "memory://"),
        # A hung Redis must cost a request half a second, not redis-py's default 5 s.
        "RATELIMIT_STORAGE_OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        # Creating links, per person: plenty for people, a brake on a runaway script.
        "LINK_CREATE_LIMIT": "30 per minute;1000 per day",
        # Unknown short links, per client IP: guessing slugs is what this slows down.
        "UNKNOWN_SLUG_LIMIT": "60 per minute",
        # Each worker resolves links from memory and asks this often what changed.
        "LINK_CACHE_REFRESH_SECONDS": 1.0,
        "LINK_CACHE_SIZE": _int_setting("LINK_CACHE_SIZE", 100_000),
        "LINK_CACHE_UNKNOWN_SIZE": _int_setting("LINK_CACHE_UNKNOWN_SIZE", 10_000),
        # Where workers append clicks for the shipper (instance/click-spool when unset);
        # it must be one directory per machine that the web process and its shipper share.
        "CLICK_SPOOL_DIR": os.environ.get("CLICK_SPOOL_DIR", "").strip() or None,
        # The shipper stores what the spools hold this often, at most this many per batch.
        "CLICK_SHIP_INTERVAL": 0.5,
        "CLICK_BATCH_SIZE": _int_setting("CLICK_BATCH_SIZE", 5000),
        # A worker starts a new spool file past this size; the shipper deletes shipped ones.
        "CLICK_SPOOL_FILE_BYTES": 16 * 1024 * 1024,
        # How long a stopping shipper keeps storing what stopping workers still write.
        "CLICK_DRAIN_SECONDS": _int_setting("CLICK_DRAIN_SECONDS", 25),
    }
    if os.environ.get("DATABASE_URL"):
        settings["SQLALCHEMY_DATABASE_URI"] = normalise_database_url(os.environ["DATABASE_URL"])
    return settings


def secure_cookie_name(name: str) -> str:
    """The session cookie's name with the __Host- prefix: browsers then refuse it unless it
    is Secure, for this exact host and path /, so no subdomain or plain-HTTP page can plant it."""
    return name if name.startswith("__Host-") else f"__Host-{name}"


def trusted_hosts(config) -> list[str] | None:
    """The host names to answer for: TRUSTED_HOSTS, else the hosts of SHORT_BASE_URL and
    APP_BASE_URL; None (any host) when none of them is set."""
    if config.get("TRUSTED_HOSTS"):
        return list(config["TRUSTED_HOSTS"])
    hosts = [
        urlsplit(url).hostname
        for url in (config.get("SHORT_BASE_URL"), config.get("APP_BASE_URL"))
        if url
    ]
    return [host for host in dict.fromkeys(hosts) if host] or None


def database_engine_options(config) -> dict:
    """Engine options that bound every wait on the database, by kind of database.

    PostgreSQL: a connect timeout, and statement and lock timeouts set per connection
    (app/database.py bounds the ping of a pooled connection).
    SQLite: how long a writer waits for another's lock (its busy timeout) before failing.
    """
    url = config["SQLALCHEMY_DATABASE_URI"]
    if url.startswith("sqlite"):
        busy_seconds = config["DATABASE_LOCK_TIMEOUT_MS"] / 1000
        return {"connect_args": {"timeout": busy_seconds}}
    options = (
        f"-c statement_timeout={config['DATABASE_STATEMENT_TIMEOUT_MS']}"
        f" -c lock_timeout={config['DATABASE_LOCK_TIMEOUT_MS']}"
    )
    # No pool_pre_ping: app/database.py pings each checkout with a deadline instead.
    return {
        "connect_args": {
            "connect_timeout": config["DATABASE_CONNECT_TIMEOUT"],
            "options": options,
        },
    }
