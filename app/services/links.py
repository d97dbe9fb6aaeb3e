"""An org's short links: create, list, edit, deactivate and delete them, and resolve a slug
for the public redirect. Every lookup is scoped by org; views commit."""

import base64
import binascii
import functools
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import and_, or_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from app.extensions import db
from app.models import MAX_INTEGER, Link, LinkChange, Membership, RetiredSlug, User
from app.services import slugs
from app.services.destinations import validate_destination
from app.services.errors import Conflict, Forbidden, InvalidInput, NotFound, Unavailable
from app.services.link_cache import RETIRED, LinkCache, LinkTarget, load_target
from app.services.orgs import has_role
from app.services.text import clean_line

PAGE_SIZE = 25
MAX_TITLE_LENGTH = 200
MAX_QUERY_LENGTH = 200
# Random slugs collide rarely (36**8 values); five misses in a row means something is wrong.
RANDOM_SLUG_ATTEMPTS = 5
# Distinct (destination, hosts) pairs whose redirect check is remembered, for targets read
# afresh (links with a click limit); a cached target remembers its own (LinkTarget.safe_for).
DESTINATION_CHECK_CACHE_SIZE = 65536
STATUS_FILTERS = ("all", "active", "inactive", "expired")
# What the link page's history calls each field a change can record.
HISTORY_FIELD_LABELS = {
    "destination": "Destination",
    "title": "Title",
    "status": "Status",
    "expires_at": "Expiry",
    "max_clicks": "Click limit",
}


@dataclass(frozen=True)
class LinkPage:
    """One page of the dashboard: its links, and the cursor of the next older page if any."""

    links: list[Link]
    next_cursor: str | None


@dataclass(frozen=True)
class Resolution:
    """What the public redirect should do with a slug.

    `outcome` is one of "redirect", "unknown", "deactivated", "deleted", "expired" and
    "unsafe" (the stored destination no longer passes validation).
    """

    outcome: str
    destination: str | None = None
    link_id: int | None = None
    org_id: int | None = None
    problem: str | None = None
    # The link stops after a number of clicks, so counting must also check the limit.
    limited: bool = False


def is_expired(link: Link, now: datetime) -> bool:
    """Tell whether the link has passed its expiry time or people have used up its clicks."""
    if link.expires_at is not None and link.expires_at <= now:
        return True
    # Bots and the org's own clicks are recorded but do not spend the limit.
    return link.max_clicks is not None and link.human_click_count >= link.max_clicks


def link_status(link: Link, now: datetime) -> str:
    """The state the dashboard shows: "active", "inactive" or "expired"."""
    if not link.is_active:
        return "inactive"
    return "expired" if is_expired(link, now) else "active"


def can_change(membership: Membership, link: Link) -> bool:
    """Creators change their own links; admins and owners change anyone's."""
    return has_role(membership, "admin") or link.created_by_id == membership.user_id


def can_delete(membership: Membership) -> bool:
    """Only admins and owners delete links."""
    return has_role(membership, "admin")


def find_link(membership: Membership, slug: str) -> Link:
    """The org's live link with this slug (any case); NotFound for other orgs' or deleted ones."""
    slug = slug.lower()
    link = None
    if slugs.could_be_stored(slug):
        link = db.session.execute(
            db.select(Link).filter(
                Link.org_id == membership.org_id,
                Link.slug == slug,
                Link.deleted_at.is_(None),
            )
        ).scalar_one_or_none()
    if link is None:
        raise NotFound("No such link in this organisation.")
    return link


def create_link(
    membership: Membership,
    creator: User,
    *,
    url: str,
    slug: str,
    title: str,
    expires_at: str,
    max_clicks: str,
    own_hosts: Iterable[str],
    reserved: set[str],
    now: datetime,
) -> Link:
    """Validate the form's values and add the link, with a custom or a random slug."""
    fields = {
        "org_id": membership.org_id,
        "destination": validate_destination(
            url, own_hosts=own_hosts, allow_private=membership.org.allow_private_destinations
        ),
        "title": clean_title(title),
        "expires_at": parse_expiry(expires_at, now),
        "max_clicks": parse_max_clicks(max_clicks),
        "created_by_id": creator.id,
    }
    custom = slug.strip()
    if custom:
        custom = slugs.clean_custom_slug(custom, reserved)
        _refuse_used_slug(custom)
        link = Link(slug=custom, **fields)
        if not _insert(link):
            # Someone took it between our check and our insert.
            _refuse_used_slug(custom)
            raise Conflict(f"“{custom}” is already taken; choose another.", field="slug")
        return link
    for _ in range(RANDOM_SLUG_ATTEMPTS):
        candidate = slugs.generate_slug()
        if candidate in reserved or db.session.get(RetiredSlug, candidate) is not None:
            continue
        link = Link(slug=candidate, **fields)
        if _insert(link):
            return link
    # Not the custom slug field's fault (it was left blank), so no field: an alert.
    raise Unavailable("Could not pick a free short link just now; please try again.")


def update_link(
    membership: Membership,
    editor: User,
    link: Link,
    *,
    url: str | None,
    title: str | None,
    expires_at: str | None = None,
    max_clicks: str | None = None,
    own_hosts: Iterable[str],
    now: datetime,
) -> None:
    """Change what the form sent (None leaves a field alone, blank clears an optional one),
    keeping a history entry for each field that changed."""
    require_can_change(membership, link)
    changes = {}
    if url is not None:
        changes["destination"] = validate_destination(
            url, own_hosts=own_hosts, allow_private=membership.org.allow_private_destinations
        )
    if title is not None:
        changes["title"] = clean_title(title)
    # An expiry already in the past is kept as it is when the form sends it back unchanged;
    # only a new one must lie in the future.
    if expires_at is not None and expires_at.strip() != expiry_input_value(link.expires_at):
        changes["expires_at"] = parse_expiry(expires_at, now)
    if max_clicks is not None:
        changes["max_clicks"] = parse_max_clicks(max_clicks)
    for field, new_value in changes.items():
        old_value = getattr(link, field)
        if old_value != new_value:
            _record_change(link, editor, field, _history_text(old_value), _history_text(new_value))
            setattr(link, field, new_value)


def set_active(
    membership: Membership, actor: User, link: Link, *, active: bool, now: datetime
) -> None:
    """Deactivate or reactivate the link; its clicks are kept either way."""
    require_can_change(membership, link)
    if link.is_active == active:
        return
    _record_change(
        link, actor, "status", *(("inactive", "active") if active else ("active", "inactive"))
    )
    link.is_active = active
    link.deactivated_at = None if active else now
    link.deactivated_by_id = None if active else actor.id


def require_can_delete(membership: Membership) -> None:
    """Raise Forbidden unless the member is an admin or owner."""
    if not can_delete(membership):
        raise Forbidden("Only an admin or owner can delete links.")


def delete_link(membership: Membership, actor: User, link: Link, *, now: datetime) -> None:
    """Soft-delete the link: the row stays as a tombstone so its slug is never reused."""
    require_can_delete(membership)
    link.deleted_at = now
    link.deleted_by_id = actor.id


def history(link: Link) -> list[LinkChange]:
    """The link's changes, newest first."""
    return list(
        db.session.execute(
            db.select(LinkChange)
            .filter(LinkChange.link_id == link.id)
            .options(selectinload(LinkChange.changed_by))
            .order_by(LinkChange.changed_at.desc(), LinkChange.id.desc())
        ).scalars()
    )


def list_links(
    membership: Membership,
    user: User,
    *,
    q: str = "",
    status: str = "all",
    mine: bool = False,
    before: str | None = None,
    now: datetime,
) -> LinkPage:
    """One page of the org's live links, newest first, filtered and searched.

    Pages are cut by a keyset cursor on (created_at, id), so links added while someone
    pages through neither repeat nor push others out of view.
    """
    query = (
        db.select(Link)
        .filter(*_list_criteria(membership, user, q=q, status=status, mine=mine, now=now))
        .options(selectinload(Link.created_by))
    )
    if before:
        created_at, link_id = decode_cursor(before)
        query = query.filter(
            or_(
                Link.created_at < created_at,
                and_(Link.created_at == created_at, Link.id < link_id),
            )
        )
    rows = list(
        db.session.execute(
            query.order_by(Link.created_at.desc(), Link.id.desc()).limit(PAGE_SIZE + 1)
        ).scalars()
    )
    next_cursor = encode_cursor(rows[PAGE_SIZE - 1]) if len(rows) > PAGE_SIZE else None
    return LinkPage(links=rows[:PAGE_SIZE], next_cursor=next_cursor)


def is_listed(
    membership: Membership, user: User, link: Link, *, q: str, status: str, mine: bool, now
) -> bool:
    """Tell whether the newest page of the dashboard, with these filters, shows the link."""
    criteria = _list_criteria(membership, user, q=q, status=status, mine=mine, now=now)
    query = db.select(Link.id).filter(Link.id == link.id, *criteria)
    return db.session.execute(query).first() is not None


def _list_criteria(
    membership: Membership, user: User, *, q: str, status: str, mine: bool, now: datetime
) -> list:
    """The conditions a link meets to be listed: the org's, live, and matching the filters."""
    criteria = [Link.org_id == membership.org_id, Link.deleted_at.is_(None)]
    q = clean_query(q)
    if q:
        pattern = f"%{_escape_like(q)}%"
        criteria.append(
            or_(
                Link.slug.ilike(pattern, escape="\\"),
                Link.destination.ilike(pattern, escape="\\"),
                Link.title.ilike(pattern, escape="\\"),
            )
        )
    criteria += _status_criteria(status, now)
    if mine:
        criteria.append(Link.created_by_id == user.id)
    return criteria


def resolve(slug: str, *, own_hosts: Iterable[str], now: datetime, cache: LinkCache) -> Resolution:
    """Decide where `GET /<slug>` goes, re-checking the stored destination on the way out.

    The worker's `cache` answers for a slug seen before, without a database round trip.
    """
    slug = slug.lower()
    if not slugs.could_be_stored(slug):
        return Resolution("unknown")
    return resolution_of(cache.lookup(slug, load_target), own_hosts=tuple(own_hosts), now=now)


def resolution_of(
    target: LinkTarget | str | None, *, own_hosts: tuple[str, ...], now: datetime
) -> Resolution:
    """Where a link's target (as the link cache holds it) leads at `now`."""
    if target is None:
        return Resolution("unknown")
    if target is RETIRED:
        # A slug retired with its deleted org is gone, not unknown.
        return Resolution("deleted")
    if target.deleted:
        return Resolution("deleted", link_id=target.link_id)
    if not target.is_active:
        return Resolution("deactivated", link_id=target.link_id)
    if (target.expires_at is not None and target.expires_at <= now) or target.used_up:
        return Resolution("expired", link_id=target.link_id)
    if target.safe_for == own_hosts:
        destination = target.destination
    else:
        destination, problem = _checked_destination(
            target.destination, own_hosts, target.allow_private
        )
        if destination is None:
            return Resolution("unsafe", link_id=target.link_id, problem=problem)
        if destination == target.destination:
            target.safe_for = own_hosts
    return Resolution(
        "redirect",
        destination=destination,
        link_id=target.link_id,
        org_id=target.org_id,
        limited=target.limited,
    )


@functools.lru_cache(maxsize=DESTINATION_CHECK_CACHE_SIZE)
def _checked_destination(
    destination: str, own_hosts: tuple[str, ...], allow_private: bool
) -> tuple[str | None, str | None]:
    """The destination as validated for redirecting, or None and the reason it fails.

    Validation costs about 30 microseconds, as much as the rest of a cached redirect, and
    gives the same answer for the same inputs, so popular links are checked once.
    """
    try:
        return validate_destination(
            destination, own_hosts=own_hosts, allow_private=allow_private
        ), None
    except InvalidInput as error:
        return None, error.message


def clean_title(raw: str | None) -> str | None:
    """A title with its spaces collapsed, or None when blank (the one text rule in
    app/services/text.py)."""
    return clean_line(raw, field="title", max_length=MAX_TITLE_LENGTH, what="title")


def clean_query(raw: str | None) -> str:
    """A search text, trimmed and cut to length, without control characters.

    No stored slug, destination or title holds one, and PostgreSQL cannot even compare
    text with a NUL in it, so they are dropped rather than searched for.
    """
    text = "".join(char for char in (raw or "") if unicodedata.category(char) != "Cc")
    return text.strip()[:MAX_QUERY_LENGTH]


def parse_expiry(raw: str | None, now: datetime) -> datetime | None:
    """An optional ISO date-time in the future; without a zone it is read as UTC."""
    text = (raw or "").strip()
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text)
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except (ValueError, OverflowError):
        raise InvalidInput(
            "Give the expiry as a date and time, for example 2030-12-31T17:00.",
            field="expires_at",
        ) from None
    if value <= now:
        raise InvalidInput("Choose an expiry time in the future.", field="expires_at")
    return value


def parse_max_clicks(raw: str | None) -> int | None:
    """An optional positive whole number of clicks after which the link stops working."""
    text = (raw or "").strip()
    if not text:
        return None
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_INTEGER:
        raise InvalidInput(
            "Give the click limit as a whole number of 1 or more.", field="max_clicks"
        )
    return int(text)


def expiry_input_value(expires_at: datetime | None) -> str:
    """An expiry as a datetime-local form field shows it: UTC, to the minute."""
    return expires_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M") if expires_at else ""


def encode_cursor(link: Link) -> str:
    """An opaque token for the position just after `link` in newest-first order."""
    raw = f"{link.created_at.isoformat()}|{link.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    """Read a cursor made by `encode_cursor`; InvalidInput when it was tampered with."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created_at, link_id = base64.urlsafe_b64decode(padded).decode().split("|")
        value = datetime.fromisoformat(created_at)
        if value.tzinfo is None:
            raise ValueError("cursor without a zone")
        position = int(link_id)
        if not 0 < position <= MAX_INTEGER:
            raise ValueError("cursor id out of range")
        return value, position
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidInput(
            "That page link is broken; start again from the newest links.", field="before"
        ) from None


def _status_criteria(status: str, now: datetime) -> list:
    """The SQL conditions of one status filter: all, active, inactive or expired."""
    not_expired = and_(
        or_(Link.expires_at.is_(None), Link.expires_at > now),
        or_(Link.max_clicks.is_(None), Link.human_click_count < Link.max_clicks),
    )
    if status == "active":
        return [Link.is_active.is_(True), not_expired]
    if status == "inactive":
        return [Link.is_active.is_(False)]
    if status == "expired":
        return [Link.is_active.is_(True), ~not_expired]
    return []


def _escape_like(text: str) -> str:
    """Escape LIKE's wildcards so a search matches them literally."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def require_can_change(membership: Membership, link: Link) -> None:
    """Raise Forbidden unless the member created the link or is an admin or owner."""
    if not can_change(membership, link):
        raise Forbidden("Only the link's creator, an admin or an owner can change it.")


def _history_text(value) -> str | None:
    """A field's value as the history stores it: text, times in UTC ISO form, None as None."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="minutes")
    return str(value)


def _record_change(link: Link, user: User, field: str, old, new) -> None:
    """Add one history entry for a changed field of the link."""
    db.session.add(
        LinkChange(
            link_id=link.id, changed_by_id=user.id, field=field, old_value=old, new_value=new
        )
    )


def _refuse_used_slug(slug: str) -> None:
    """Raise Conflict if any link, in any org, live or deleted, has this slug, or had it
    before its org was deleted."""
    deleted_at = db.session.execute(db.select(Link.deleted_at).filter(Link.slug == slug)).first()
    retired = db.session.get(RetiredSlug, slug) is not None
    if deleted_at is None and not retired:
        return
    if retired or deleted_at[0] is not None:
        raise Conflict(
            f"“{slug}” belonged to a deleted link and is retired, so old copies of it "
            "can not lead somewhere new. Choose another.",
            field="slug",
        )
    raise Conflict(f"“{slug}” is already taken; choose another.", field="slug")


def _insert(link: Link) -> bool:
    """Insert inside a savepoint; False when the slug's unique index refused it."""
    try:
        with db.session.begin_nested():
            db.session.add(link)
            db.session.flush()
    except IntegrityError:
        return False
    return True
