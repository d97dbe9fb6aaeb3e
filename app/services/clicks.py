"""Recording clicks: what a visit tells us (without keeping the IP) and how it is stored.

`record_visit` is the one entry point the redirect uses; everything it does for a click
(reading the user agent, hashing the visitor, counting a limited link, spooling the row
for the shipper) happens behind it.
"""

import contextlib
import enum
import functools
import hashlib
import hmac
import ipaddress
import logging
import re
import secrets
import sys
import weakref
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from urllib.parse import urlsplit

import crawleruseragents
import ua_parser
from flask import Flask, current_app
from sqlalchemy import delete, or_, update
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models import Link, VisitorSalt
from app.services.click_spool import ClickSpool
from app.services.orgs import is_member

log = logging.getLogger(__name__)

_TABLET_BRANDS = {"Generic_Android_Tablet"}
_TABLET_FAMILIES = {"iPad", "Kindle"}
_MOBILE_OS_FAMILIES = {"iOS", "Android", "Windows Phone", "BlackBerry OS", "KaiOS"}
_DESKTOP_OS_FAMILIES = {"Windows", "Mac OS X", "Linux", "Ubuntu", "Fedora", "Chrome OS", "FreeBSD"}
_HOST_CHARACTERS = re.compile(r"[a-z0-9._-]+")
_DOTTED_QUAD = re.compile(r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}")
MAX_HOST_LENGTH = 255
MAX_FAMILY_LENGTH = 64
# Parsing a user agent costs about a millisecond; visitors share a few hundred of them.
USER_AGENT_CACHE_SIZE = 4096
# Spool lines give click times in microseconds since this instant.
_SPOOL_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
# Today's salt per app, so the redirect reads it once a day, not once a click.
_salt_cache: weakref.WeakKeyDictionary[Flask, tuple[date, bytes]] = weakref.WeakKeyDictionary()


class ClickOutcome(enum.Enum):
    """What became of a visit: counted, refused by the link's click limit, or lost."""

    COUNTED = "counted"
    LIMIT_REACHED = "limit_reached"
    DROPPED = "dropped"


@dataclass(frozen=True)
class Visit:
    """What a redirect request says about its visitor, as the request gave it."""

    user_agent: str | None
    referrer: str | None
    remote_addr: str | None
    # The value of the CDN's country header, when one is configured as trusted.
    country: str | None = None
    # Sec-Purpose or Purpose: browsers send "prefetch" when nobody has clicked yet.
    purpose: str | None = None
    # The signed-in user's id, if the request carries a session.
    user_id: int | None = None


@dataclass(frozen=True)
class AgentDetails:
    """What a user agent string tells about the software behind a visit."""

    browser: str | None
    os: str | None
    device_type: str
    is_bot: bool


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


def describe_visit(visit: Visit, *, salt: bytes) -> VisitDetails:
    """Turn a visit's raw request values into the details a click row stores."""
    user_agent = (visit.user_agent or "").strip()
    agent = describe_user_agent(user_agent)
    return VisitDetails(
        browser=agent.browser,
        os=agent.os,
        device_type=agent.device_type,
        # A prefetch is the browser guessing, not a person clicking.
        is_bot=agent.is_bot or is_prefetch(visit.purpose),
        referrer_host=referrer_host(visit.referrer),
        country=country_code(visit.country),
        visitor_hash=visitor_hash(visit.remote_addr, user_agent, salt=salt),
    )


@functools.lru_cache(maxsize=USER_AGENT_CACHE_SIZE)
def describe_user_agent(user_agent: str) -> AgentDetails:
    """Browser, OS, device type and bot flag of a user agent (ua-parser, crawler list)."""
    parsed = ua_parser.parse(user_agent)
    is_bot = is_bot_user_agent(user_agent, parsed)
    return AgentDetails(
        browser=_family(parsed.user_agent),
        os=_family(parsed.os),
        device_type="bot" if is_bot else _device_type(parsed),
        is_bot=is_bot,
    )


def is_bot_user_agent(user_agent: str, parsed: ua_parser.Result) -> bool:
    """Tell whether a user agent (and what ua-parser made of it) is a crawler, script or
    link-preview fetcher.

    Browsers always send a user agent, so an empty one is treated as a script.
    """
    if not user_agent:
        return True
    if parsed.device is not None and parsed.device.family == "Spider":
        return True
    return crawleruseragents.is_crawler(user_agent)


def is_prefetch(purpose: str | None) -> bool:
    """Tell whether Sec-Purpose or Purpose says the browser is fetching ahead of a click."""
    return bool(purpose) and "prefetch" in purpose.lower()


def _family(part) -> str | None:
    """A parsed part's family name, or None when ua-parser could not tell ("Other")."""
    if part is None or part.family == "Other":
        return None
    return part.family[:MAX_FAMILY_LENGTH]


def _device_type(parsed: ua_parser.Result) -> str:
    """Tablet, mobile, desktop or other, from the device and OS ua-parser found."""
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


def visitor_hash(remote_addr: str | None, user_agent: str, *, salt: bytes) -> str | None:
    """A hash of IP and user agent keyed with the day's salt, so unique visitors can be
    counted within a day but never followed across days or turned back into an IP."""
    if not remote_addr:
        return None
    ip = remote_addr.strip()
    if not _DOTTED_QUAD.fullmatch(ip):
        # IPv6 has many spellings of one address: one form, so they hash alike. A dotted
        # quad needs no parsing: ipaddress gives back the same text or refuses it.
        with contextlib.suppress(ValueError):
            ip = str(ipaddress.ip_address(ip))
    return hmac.new(salt, f"{ip}|{user_agent}".encode(), hashlib.sha256).hexdigest()


def daily_salt(day: date) -> bytes:
    """The random salt of this UTC day's visitor hashes, made by the day's first click.

    Making it also deletes every older salt: from then on, earlier days' hashes can not be
    recomputed from a guessed IP address.
    """
    app = current_app._get_current_object()
    cached = cached_salt(app, day)
    if cached is not None:
        return cached
    row = db.session.get(VisitorSalt, day)
    if row is None:
        try:
            db.session.add(VisitorSalt(day=day, salt=secrets.token_hex(32)))
            db.session.execute(delete(VisitorSalt).where(VisitorSalt.day < day))
            # Committed at once: every worker must hash today's visitors with this salt,
            # and the redirect itself writes nothing else that would commit it.
            db.session.commit()
        except IntegrityError:
            # Another worker made today's salt first; use theirs.
            db.session.rollback()
        row = db.session.execute(db.select(VisitorSalt).filter_by(day=day)).scalar_one()
    salt = bytes.fromhex(row.salt)
    _salt_cache[app] = (day, salt)
    return salt


def cached_salt(app: Flask, day: date) -> bytes | None:
    """The salt of `day` if `app` has read it already (no database needed), else None."""
    cached = _salt_cache.get(app)
    return cached[1] if cached is not None and cached[0] == day else None


def record_visit(
    link_id: int,
    org_id: int,
    visit: Visit,
    *,
    limited: bool,
    now: datetime,
    spool: ClickSpool,
) -> ClickOutcome:
    """Count one visit to a link as a click: hand it to this worker's spool, where the
    shipper (app/services/click_shipping.py) picks it up within a second.

    Every click adds to `click_count`; only a person's (not a bot, not the link's own org)
    also adds to `human_click_count`, which is what a click limit spends. A link with a
    limit (`limited`) is counted here and now, by an UPDATE that checks the limit under
    its row lock, so concurrent visitors can not overshoot it; once people have used it up
    every visit, bots' too, is LIMIT_REACHED. Never raises: a redirect must not break
    because its click could not be recorded, so any failure is logged as `click_dropped`
    and reported as DROPPED.
    """
    try:
        details = describe_visit(visit, salt=daily_salt(now.date()))
        internal = None
        if limited:
            internal = visit.user_id is not None and is_member(visit.user_id, org_id)
            if not _count_within_limit(link_id, human=not details.is_bot and not internal):
                return ClickOutcome.LIMIT_REACHED
    except Exception:
        db.session.rollback()
        _log_dropped(link_id, now)
        return ClickOutcome.DROPPED
    return _spool_click(
        link_id, org_id, details, user_id=visit.user_id, internal=internal, now=now, spool=spool
    )


def record_cached_visit(
    link_id: int, org_id: int, visit: Visit, *, salt: bytes, now: datetime, spool: ClickSpool
) -> ClickOutcome:
    """Count a visit to a link without a click limit, by an anonymous visitor, given the
    day's salt: no database at all, for the cached redirect (app/fast_redirects.py).

    Never raises, like `record_visit`.
    """
    try:
        details = describe_visit(visit, salt=salt)
    except Exception:
        _log_dropped(link_id, now)
        return ClickOutcome.DROPPED
    return _spool_click(link_id, org_id, details, user_id=None, internal=None, now=now, spool=spool)


def _spool_click(
    link_id: int,
    org_id: int,
    details: VisitDetails,
    *,
    user_id: int | None,
    internal: bool | None,
    now: datetime,
    spool: ClickSpool,
) -> ClickOutcome:
    """Append the click to the spool; DROPPED (and logged) when the disk refuses it."""
    record = click_record(
        link_id=link_id,
        org_id=org_id,
        clicked_at=now,
        details=details,
        user_id=user_id,
        internal=internal,
    )
    try:
        spool.append(record)
    except Exception:
        _log_dropped(link_id, now)
        return ClickOutcome.DROPPED
    return ClickOutcome.COUNTED


def _log_dropped(link_id: int, now: datetime) -> None:
    """One line a log drain can count and reconcile later, then the traceback."""
    log.error(
        "event=click_dropped link_id=%s clicked_at=%s error=%s",
        link_id,
        now.isoformat(),
        type(sys.exception()).__name__,
        exc_info=True,
    )


def _count_within_limit(link_id: int, *, human: bool) -> bool:
    """Add a click to a limited link's counters unless people have used up its limit;
    commit, and tell whether it was counted.

    The UPDATE checks the limit under its row lock, so no two visitors can both take the
    last click.
    """
    # Named, so the onupdate of updated_at does not mark every click as an edit.
    counts = {"click_count": Link.click_count + 1, "updated_at": Link.updated_at}
    # A link preview or a colleague's test click must leave a one-time link to its person.
    if human:
        counts["human_click_count"] = Link.human_click_count + 1
    count = (
        update(Link)
        .where(
            Link.id == link_id,
            or_(Link.max_clicks.is_(None), Link.human_click_count < Link.max_clicks),
        )
        .values(**counts)
        .execution_options(synchronize_session=False)
    )
    counted = db.session.execute(count).rowcount == 1
    if counted:
        db.session.commit()
    else:
        db.session.rollback()
    return counted


def click_record(
    *,
    link_id: int,
    org_id: int,
    clicked_at: datetime,
    details: VisitDetails,
    user_id: int | None,
    internal: bool | None = None,
) -> dict:
    """One click as a spool line holds it, with short keys (it is written per redirect).

    `internal` is given when the redirect already counted the click (a link with a click
    limit): the shipper then stores it without counting it again. Otherwise the shipper
    counts it and decides from `user_id` and `org_id` whether it was the team's own.
    """
    record = {"l": link_id, "o": org_id, "t": (clicked_at - _SPOOL_EPOCH) // _MICROSECOND}
    optional = {
        "r": details.referrer_host,
        "b": details.browser,
        "s": details.os,
        "d": details.device_type,
        "x": 1 if details.is_bot else None,
        "c": details.country,
        "h": details.visitor_hash,
        "u": user_id,
        "i": internal,
    }
    record.update((key, value) for key, value in optional.items() if value is not None)
    return record


def click_row(record: dict, *, internal: bool) -> dict:
    """The clicks-table row of a spool line made by `click_record`."""
    return {
        "link_id": int(record["l"]),
        "clicked_at": _SPOOL_EPOCH + int(record["t"]) * _MICROSECOND,
        "referrer_host": record.get("r"),
        "browser": record.get("b"),
        "os": record.get("s"),
        "device_type": record.get("d"),
        "is_bot": bool(record.get("x")),
        "is_internal": internal,
        "country": record.get("c"),
        "visitor_hash": record.get("h"),
    }
