"""Short-link slugs: random ones, the rules for custom ones, and the words no link may take."""

import re
import secrets
import string
from collections.abc import Iterable

from werkzeug.routing import Map

from app.services.errors import InvalidInput

RANDOM_ALPHABET = string.digits + string.ascii_lowercase
# 36**8 is about 2.8e12 (41 bits): guessing live slugs stays impractical.
RANDOM_LENGTH = 8
MIN_LENGTH = 3
MAX_LENGTH = 64
_CUSTOM_SLUG = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?")
_STORED_SLUG = re.compile(rf"[a-z0-9-]{{1,{MAX_LENGTH}}}")

# Paths that crawlers, browsers and future features expect, on top of every route the
# app has (see `reserved_slugs`). A link must never shadow a page of ours.
STATIC_RESERVED = frozenset(
    {
        ".well-known",
        "about",
        "account",
        "admin",
        "ads.txt",
        "api",
        "app",
        "apple-app-site-association",
        "apple-touch-icon.png",
        "assets",
        "auth",
        "browserconfig.xml",
        "callback",
        "dashboard",
        "docs",
        "favicon",
        "favicon.ico",
        "health",
        "healthz",
        "help",
        "humans.txt",
        "invitations",
        "login",
        "logout",
        "manifest.json",
        "metrics",
        "oauth",
        "oidc",
        "orgs",
        "readyz",
        "robots",
        "robots.txt",
        "security.txt",
        "settings",
        "signin",
        "signout",
        "signup",
        "sitemap.xml",
        "static",
        "status",
        "well-known",
        "www",
    }
)


def generate_slug() -> str:
    """A random slug of 8 characters from [0-9a-z], drawn with `secrets`."""
    return "".join(secrets.choice(RANDOM_ALPHABET) for _ in range(RANDOM_LENGTH))


def first_segments(url_map: Map) -> set[str]:
    """The first path segment of every route, except the `/<slug>` catch-all itself."""
    segments = set()
    for rule in url_map.iter_rules():
        segment = rule.rule.lstrip("/").split("/", 1)[0]
        if segment and "<" not in segment:
            segments.add(segment.lower())
    return segments


def reserved_slugs(url_map: Map) -> set[str]:
    """Every word a link may not take, derived from the routes so new ones are covered."""
    return set(STATIC_RESERVED) | first_segments(url_map)


def could_be_stored(slug: str) -> bool:
    """Tell whether a slug from a URL (already lower-cased) could match a stored one.

    Looking up anything else is pointless, and for a NUL byte PostgreSQL fails the query.
    """
    return _STORED_SLUG.fullmatch(slug) is not None


def clean_custom_slug(raw: str, reserved: Iterable[str]) -> str:
    """Validate a slug someone typed and return it lower-cased, as it is stored."""
    if not raw.isascii():
        raise InvalidInput(
            "Use only the letters a-z, digits and dashes in the short link.", field="slug"
        )
    slug = raw.lower()
    if not MIN_LENGTH <= len(slug) <= MAX_LENGTH:
        raise InvalidInput(
            f"Make the short link {MIN_LENGTH} to {MAX_LENGTH} characters long.", field="slug"
        )
    if not _CUSTOM_SLUG.fullmatch(slug):
        raise InvalidInput(
            "Use only the letters a-z, digits and dashes, and start and end with a letter "
            "or digit.",
            field="slug",
        )
    if slug in reserved:
        raise InvalidInput(
            f"“{slug}” is reserved for Linkdeck's own pages; choose another.", field="slug"
        )
    return slug
