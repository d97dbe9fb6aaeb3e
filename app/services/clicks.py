"""Recording clicks: what a visit tells us (without keeping the IP) and how it is stored."""

import hashlib
import hmac
import ipaddress
import logging
import re
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

import crawleruseragents
import ua_parser
from sqlalchemy import update
from sqlalchemy.exc import SQLAlchemyError

from app.extensions import db
from app.models import Click, Link

log = logging.getLogger(__name__)

# One regex from the maintained crawler list, compiled once: the library's own helper
# scans it in chunks on every call. The patterns are written to be case-sensitive.
_CRAWLER_PATTERN = re.compile(
    "|".join(entry["pattern"] for entry in crawleruseragents.CRAWLER_USER_AGENTS_DATA)
)
_TABLET_BRANDS = {"Generic_Android_Tablet"}
_TABLET_FAMILIES = {"iPad", "Kindle"}
_MOBILE_OS_FAMILIES = {"iOS", "Android", "Windows Phone", "BlackBerry OS", "KaiOS"}
_DESKTOP_OS_FAMILIES = {"Windows", "Mac OS X", "Linux", "Ubuntu", "Fedora", "Chrome OS", "FreeBSD"}
_HOST_CHARACTERS = re.compile(r"[a-z0-9._-]+")
MAX_HOST_LENGTH = 255
MAX_FAMILY_LENGTH = 64


@dataclass(frozen=True)
class VisitDetails:
    """What one redirect is allowed to remember about its visitor (never the IP)."""

    browser: str | None
    os: str | None
    device_type: str
    is_bot: bool
    referrer_host: str | None
    country: str | None
    visitor_hash: str | None


def visitor_hash_key(secret_key: str | bytes) -> bytes:
    """Derive the visitor-hash key from SECRET_KEY, so no second secret needs managing."""
    if isinstance(secret_key, str):
        secret_key = secret_key.encode()
    return hmac.new(secret_key, b"linkdeck visitor hash", hashlib.sha256).digest()


def describe_visit(
    user_agent: str | None,
    referrer: str | None,
    remote_addr: str | None,
    country: str | None,
    *,
    key: bytes,
    now: datetime,
) -> VisitDetails:
    """Turn a visit's raw request values into the details a click row stores."""
    user_agent = (user_agent or "").strip()
    parsed = ua_parser.parse(user_agent)
    is_bot = is_bot_user_agent(user_agent, parsed)
    return VisitDetails(
        browser=_family(parsed.user_agent),
        os=_family(parsed.os),
        device_type="bot" if is_bot else _device_type(parsed),
        is_bot=is_bot,
        referrer_host=referrer_host(referrer),
        country=country_code(country),
        visitor_hash=visitor_hash(remote_addr, user_agent, key=key, now=now),
    )


def is_bot_user_agent(user_agent: str, parsed: ua_parser.Result | None = None) -> bool:
    """Tell whether a user agent is a crawler, script or link-preview fetcher.

    Browsers always send a user agent, so an empty one is treated as a script.
    """
    if not user_agent:
        return True
    parsed = parsed or ua_parser.parse(user_agent)
    if parsed.device is not None and parsed.device.family == "Spider":
        return True
    return _CRAWLER_PATTERN.search(user_agent) is not None


def _family(part) -> str | None:
    if part is None or part.family == "Other":
        return None
    return part.family[:MAX_FAMILY_LENGTH]


def _device_type(parsed: ua_parser.Result) -> str:
    device, os = parsed.device, parsed.os
    if device is not None and (device.family in _TABLET_FAMILIES or device.brand in _TABLET_BRANDS):
        return "tablet"
    os_family = os.family if os is not None else None
    if os_family in _MOBILE_OS_FAMILIES:
        return "mobile"
    if os_family in _DESKTOP_OS_FAMILIES:
        return "desktop"
    return "other"


def referrer_host(referrer: str | None) -> str | None:
    """The referrer's host, lower-case and without port or path; None if there is none.

    Only the host is kept: full referrers can carry tokens and personal data.
    """
    if not referrer:
        return None
    try:
        host = urlsplit(referrer.strip()).hostname
    except ValueError:
        return None
    if not host:
        return None
    host = host.rstrip(".")
    if len(host) > MAX_HOST_LENGTH:
        return None
    if _HOST_CHARACTERS.fullmatch(host):
        return host
    try:
        return str(ipaddress.IPv6Address(host))
    except ValueError:
        return None


def country_code(value: str | None) -> str | None:
    """A two-letter country code from the trusted header, upper-cased; None otherwise.

    CDNs send XX for "unknown" and codes such as T1 for Tor, which are not countries.
    """
    if not value:
        return None
    code = value.strip().upper()
    if len(code) != 2 or not code.isascii() or not code.isalpha() or code == "XX":
        return None
    return code


def visitor_hash(
    remote_addr: str | None, user_agent: str, *, key: bytes, now: datetime
) -> str | None:
    """A keyed hash of IP and user agent that changes every UTC day.

    The day in the message means the same visitor gets an unrelated hash tomorrow, so
    visitors cannot be followed across days and the IP cannot be recovered.
    """
    if not remote_addr:
        return None
    try:
        ip = str(ipaddress.ip_address(remote_addr.strip()))
    except ValueError:
        ip = remote_addr.strip()
    day = now.date().isoformat()
    message = f"{day}|{ip}|{user_agent}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def record_click(link_id: int, details: VisitDetails, *, is_internal: bool, now: datetime) -> bool:
    """Store one click and add it to the link's count; return False (and log) if that failed.

    Never raises: a redirect must not break because its click could not be recorded.
    """
    try:
        db.session.add(
            Click(
                link_id=link_id,
                clicked_at=now,
                referrer_host=details.referrer_host,
                browser=details.browser,
                os=details.os,
                device_type=details.device_type,
                is_bot=details.is_bot,
                is_internal=is_internal,
                country=details.country,
                visitor_hash=details.visitor_hash,
            )
        )
        # Incremented in SQL, never read-modify-write, so concurrent redirects lose no count.
        db.session.execute(
            update(Link)
            .where(Link.id == link_id)
            .values(click_count=Link.click_count + 1)
            .execution_options(synchronize_session=False)
        )
        db.session.commit()
    except SQLAlchemyError as error:
        db.session.rollback()
        # One line a log drain can count and reconcile later.
        log.error(
            "event=click_dropped link_id=%s clicked_at=%s error=%s",
            link_id,
            now.isoformat(),
            type(error).__name__,
        )
        return False
    return True
