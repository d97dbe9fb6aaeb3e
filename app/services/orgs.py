"""Organisations and the memberships that give users a role in them."""

import re
import unicodedata

from sqlalchemy.exc import IntegrityError

from app.database import on_postgresql
from app.extensions import db
from app.models import Membership, Org, User
from app.services.errors import Forbidden, InvalidInput, NotFound
from app.services.text import clean_line

MAX_ORG_NAME_LENGTH = 100
MAX_ORG_SLUG_LENGTH = 64
# Higher outranks lower; DESIGN.md section 4 says what each role may do.
ROLE_RANK = {"member": 1, "admin": 2, "owner": 3}
_SLUG_CHARS = re.compile(r"[^a-z0-9]+")
# What `slugify` and its "-2" suffixes can produce.
_ORG_SLUG = re.compile(rf"[a-z0-9][a-z0-9-]{{0,{MAX_ORG_SLUG_LENGTH - 1}}}")


def slugify(name: str) -> str:
    """Turn an org name into a URL-safe slug ("Acme Inc." -> "acme-inc")."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    # Cut first, then trim: a cut may land just after a dash.
    return _SLUG_CHARS.sub("-", ascii_name.lower())[:50].strip("-") or "org"


def clean_org_name(raw: str | None) -> str:
    """Validate an org name (required, one line, no invisible characters); return it trimmed."""
    name = clean_line(raw, field="name", max_length=MAX_ORG_NAME_LENGTH, what="name")
    if name is None:
        raise InvalidInput("Give the organisation a name.", field="name")
    return name


def is_org_slug(value: str | None) -> bool:
    """Tell whether `value` could be an org's slug; nothing else is worth a query."""
    return bool(value) and _ORG_SLUG.fullmatch(value) is not None


def create_org(creator: User, raw_name: str | None) -> Org:
    """Create an org with a unique slug derived from its name; the creator becomes its owner."""
    name = clean_org_name(raw_name)
    base = slugify(name)
    for attempt in range(1, 100):
        slug = base if attempt == 1 else f"{base}-{attempt}"
        if db.session.execute(db.select(Org.id).filter_by(slug=slug)).first():
            continue
        org = Org(name=name, slug=slug)
        try:
            # A savepoint, so losing a race for the slug only retries this insert. The owner
            # goes in with the org: on SQLite a savepoint opened before any other write is
            # the transaction itself, and releasing it commits, so an org written without
            # its owner could be left ownerless if the rest of the request failed.
            with db.session.begin_nested():
                db.session.add(org)
                db.session.add(Membership(user=creator, org=org, role="owner"))
                db.session.flush()
        except IntegrityError:
            continue
        return org
    raise InvalidInput("Too many organisations share that name; choose another.", field="name")


def memberships_of(user: User) -> list[Membership]:
    """The user's memberships with their orgs, alphabetically by org name."""
    return list(
        db.session.execute(
            db.select(Membership)
            .join(Membership.org)
            .filter(Membership.user_id == user.id)
            .order_by(Org.name, Org.id)
        ).scalars()
    )


def membership_for(user: User, org_slug: str) -> Membership:
    """The user's membership in the org with this slug.

    Raises NotFound both when the org does not exist and when the user is not a member,
    so outsiders cannot learn which orgs exist. A value no slug can take (a NUL byte, a
    space, a capital) is refused before the query: PostgreSQL would fail on some of them.
    """
    if not is_org_slug(org_slug):
        raise NotFound("No such organisation.")
    membership = db.session.execute(
        db.select(Membership)
        .join(Membership.org)
        .filter(Org.slug == org_slug, Membership.user_id == user.id)
    ).scalar_one_or_none()
    if membership is None:
        raise NotFound("No such organisation.")
    return membership


def is_member(user_id: int, org_id: int) -> bool:
    """Tell whether the user belongs to the org."""
    return (
        db.session.execute(
            db.select(Membership.id).filter_by(user_id=user_id, org_id=org_id)
        ).first()
        is not None
    )


def landing_org(user: User, last_org_slug: str | None) -> Org | None:
    """The org to open for a signed-in user: the last used one if still a member, else none."""
    if not is_org_slug(last_org_slug):
        return None
    return db.session.execute(
        db.select(Org)
        .join(Membership)
        .filter(Org.slug == last_org_slug, Membership.user_id == user.id)
    ).scalar_one_or_none()


def has_role(membership: Membership, role: str) -> bool:
    """Tell whether the membership's role is `role` or above."""
    return ROLE_RANK[membership.role] >= ROLE_RANK[role]


def require_role(membership: Membership, role: str) -> None:
    """Raise Forbidden unless the membership's role is `role` or above."""
    if not has_role(membership, role):
        raise Forbidden(f"Only an {role} or above can do this.")


def lock_org(org_id: int) -> Org:
    """Lock the org's row until the transaction ends, then read it as stored now.

    Every transaction that changes memberships takes this lock first and only then reads
    roles, so two concurrent changes (two owners demoting each other) run one after the
    other and the second sees the first one's result. PostgreSQL locks the row with
    SELECT ... FOR UPDATE. SQLite has no row locks, and Python's sqlite3 driver only
    begins a transaction at its first write, so until then every read sees whatever was
    committed last and nothing stops another request from writing in between: a no-op
    UPDATE as the first write takes SQLite's database write lock (RESERVED) here instead,
    which other writers wait for (busy_timeout) and then read what this one committed.
    """
    if not on_postgresql(db.session):
        db.session.execute(
            db.update(Org)
            .where(Org.id == org_id)
            .values(id=Org.id)
            .execution_options(synchronize_session=False)
        )
    org = db.session.execute(
        db.select(Org)
        .filter_by(id=org_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if org is None:
        raise NotFound("No such organisation.")
    return org


def fresh_membership(org_id: int, user_id: int) -> Membership | None:
    """The user's membership in the org as stored now, not as loaded earlier in the request."""
    return db.session.execute(
        db.select(Membership)
        .filter_by(org_id=org_id, user_id=user_id)
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()


def owner_count(org_id: int) -> int:
    """How many owners the org has."""
    return db.session.execute(
        db.select(db.func.count(Membership.id)).filter_by(org_id=org_id, role="owner")
    ).scalar_one()
