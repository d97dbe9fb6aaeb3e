"""Typed database models: users, orgs, memberships, invitations, audit events,
links, their history and clicks."""

from datetime import UTC, date, datetime

from flask_login import UserMixin
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db


def utcnow() -> datetime:
    """Return the current time as an aware UTC datetime."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """A timestamp stored in UTC and always read back timezone-aware.

    SQLite keeps no zone and hands back naive values; normalising here means the rest
    of the code compares aware datetimes on both databases.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        """Refuse naive datetimes and store aware ones in UTC."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value, dialect):
        """Hand back an aware UTC datetime, whatever the database returned."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY.
BigIntegerPK = BigInteger().with_variant(Integer(), "sqlite")
# The largest value of an INTEGER column on PostgreSQL (ids, click limits): a larger number
# from a form, a path or a cursor was never stored, and the database would refuse it.
MAX_INTEGER = 2**31 - 1

ROLES = ("owner", "admin", "member")


class User(UserMixin, db.Model):
    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("oidc_issuer", "oidc_subject"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    oidc_issuer: Mapped[str] = mapped_column(String(255))
    oidc_subject: Mapped[str] = mapped_column(String(255))
    email: Mapped[str | None] = mapped_column(String(320))
    email_verified: Mapped[bool] = mapped_column(Boolean, default=False)
    name: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    memberships: Mapped[list["Membership"]] = relationship(back_populates="user")

    @property
    def display_name(self) -> str:
        """The name people see: the provider's name, else the email, else the subject."""
        return self.name or self.email or self.oidc_subject


class Org(db.Model):
    __tablename__ = "orgs"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Verified emails of this domain join as members at sign-in. Unique: a domain's people
    # can be auto-joined into one org only.
    allowed_email_domain: Mapped[str | None] = mapped_column(String(255), unique=True)
    # Go-link style intranet destinations (http://wiki/, 10.x addresses) are refused
    # unless the org turns this on.
    allow_private_destinations: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false()
    )

    memberships: Mapped[list["Membership"]] = relationship(
        back_populates="org", cascade="all, delete-orphan", passive_deletes=True
    )


class Membership(db.Model):
    __tablename__ = "memberships"
    __table_args__ = (
        UniqueConstraint("user_id", "org_id"),
        CheckConstraint("role IN ('owner', 'admin', 'member')", name="role"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    user: Mapped[User] = relationship(back_populates="memberships")
    org: Mapped[Org] = relationship(back_populates="memberships")


class UserSession(db.Model):
    """One signed-in browser: the session cookie names it, and it ends on the server.

    The cookie holds a random token; only its SHA-256 is stored. A session that signed out,
    was ended by "Sign out everywhere" or has passed `expires_at` no longer signs anyone in,
    even if its cookie is replayed.
    """

    __tablename__ = "user_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The provider's ID token, sent back as id_token_hint when signing out there too.
    id_token: Mapped[str | None] = mapped_column(Text)

    user: Mapped[User] = relationship()


class DepartedMember(db.Model):
    """Someone who was removed from an org or left it: auto-join never adds them back.

    An invitation they accept clears the record.
    """

    __tablename__ = "departed_members"
    __table_args__ = (
        UniqueConstraint("org_id", "user_id"),
        CheckConstraint("reason IN ('removed', 'left')", name="reason"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    reason: Mapped[str] = mapped_column(String(16))
    departed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Link(db.Model):
    __tablename__ = "links"
    __table_args__ = (
        Index("ix_links_org_id_created_at", "org_id", "created_at"),
        # Dashboard search is a substring match (ILIKE '%q%'); trigram indexes answer it
        # without reading every link. PostgreSQL only: SQLite scans, which is fine locally.
        *(
            Index(
                f"ix_links_{column}_trgm",
                column,
                postgresql_using="gin",
                postgresql_ops={column: "gin_trgm_ops"},
            ).ddl_if(dialect="postgresql")
            for column in ("slug", "destination", "title")
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"))
    # Set from LinkVersionCounter by every change that can alter where the link leads, in
    # the changing transaction, so each worker's link cache can ask what changed since.
    version: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0", index=True)
    # Unique across the whole site and stored lower-case; a deleted link keeps its row
    # (deleted_at set) so its slug is never handed out again.
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    destination: Mapped[str] = mapped_column(Text)
    title: Mapped[str | None] = mapped_column(String(200))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    deactivated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    deactivated_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    max_clicks: Mapped[int | None] = mapped_column(Integer)
    # Every recorded click, bots and the team's own included.
    click_count: Mapped[int] = mapped_column(BigInteger, default=0)
    # Clicks by people outside the org: what the dashboard shows and max_clicks limits.
    human_click_count: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    deleted_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))

    org: Mapped[Org] = relationship()
    created_by: Mapped[User | None] = relationship(foreign_keys=[created_by_id])


class LinkChange(db.Model):
    """One field of a link changed by someone: the link's history."""

    __tablename__ = "link_changes"
    __table_args__ = (Index("ix_link_changes_link_id_changed_at", "link_id", "changed_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    link_id: Mapped[int] = mapped_column(ForeignKey("links.id", ondelete="CASCADE"))
    changed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    field: Mapped[str] = mapped_column(String(32))
    old_value: Mapped[str | None] = mapped_column(Text)
    new_value: Mapped[str | None] = mapped_column(Text)

    changed_by: Mapped[User | None] = relationship()


class Click(db.Model):
    __tablename__ = "clicks"
    __table_args__ = (Index("ix_clicks_link_id_clicked_at", "link_id", "clicked_at"),)

    id: Mapped[int] = mapped_column(BigIntegerPK, primary_key=True)
    link_id: Mapped[int] = mapped_column(ForeignKey("links.id", ondelete="CASCADE"))
    clicked_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    referrer_host: Mapped[str | None] = mapped_column(String(255))
    browser: Mapped[str | None] = mapped_column(String(64))
    os: Mapped[str | None] = mapped_column(String(64))
    device_type: Mapped[str | None] = mapped_column(String(16))
    is_bot: Mapped[bool] = mapped_column(Boolean, default=False)
    is_internal: Mapped[bool] = mapped_column(Boolean, default=False)
    country: Mapped[str | None] = mapped_column(String(2))
    # A hash of IP and user agent keyed with the day's VisitorSalt: counts unique visitors
    # without ever storing an IP address.
    visitor_hash: Mapped[str | None] = mapped_column(String(64))


class VisitorSalt(db.Model):
    """The random key of one UTC day's visitor hashes.

    Only today's is kept: once a day's salt is deleted, nobody, not even someone holding
    the database and SECRET_KEY, can test a guessed IP address against that day's hashes.
    """

    __tablename__ = "visitor_salts"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    salt: Mapped[str] = mapped_column(String(64))


class Invitation(db.Model):
    __tablename__ = "invitations"
    __table_args__ = (CheckConstraint("role IN ('owner', 'admin', 'member')", name="role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"), index=True)
    # Stored lower-case; accepting compares it with the signed-in user's verified email.
    email: Mapped[str] = mapped_column(String(320))
    role: Mapped[str] = mapped_column(String(16))
    # SHA-256 of the token in the link: a leaked database does not leak usable invitations.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    invited_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    accepted_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    org: Mapped[Org] = relationship()
    invited_by: Mapped[User | None] = relationship(foreign_keys=[invited_by_id])


class AuditEvent(db.Model):
    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_org_id_at", "org_id", "at"),)

    id: Mapped[int] = mapped_column(BigIntegerPK, primary_key=True)
    # SET NULL, not CASCADE: the record that an org was deleted outlives the org.
    org_id: Mapped[int | None] = mapped_column(ForeignKey("orgs.id", ondelete="SET NULL"))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    action: Mapped[str] = mapped_column(String(64))
    # Who or what the change was done to, as people read it (an email, a role, the org name).
    target: Mapped[str | None] = mapped_column(String(320))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # JSON text with the specifics, e.g. {"from": "member", "to": "admin"}.
    details: Mapped[str | None] = mapped_column(Text)

    actor: Mapped[User | None] = relationship()


class RetiredSlug(db.Model):
    """A slug whose link went with its deleted org; kept so it is never handed out again."""

    __tablename__ = "retired_slugs"

    slug: Mapped[str] = mapped_column(String(64), primary_key=True)
    retired_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The link version of the deletion, so link caches learn that the slug is gone.
    version: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0", index=True)


class LinkVersionCounter(db.Model):
    """The one row handing out link versions, in commit order.

    Taking the next value locks the row until the transaction ends, so a later version
    never becomes visible before an earlier one: a cache that has seen version N has seen
    every change up to N.
    """

    __tablename__ = "link_version_counter"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)


class ClickSpoolPosition(db.Model):
    """How far the click shipper has stored one worker's spool file, in bytes.

    Written in the same transaction as the clicks it covers, so a batch lands exactly once
    whatever dies when.
    """

    __tablename__ = "click_spool_positions"

    spool: Mapped[str] = mapped_column(String(200), primary_key=True)
    offset: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class ClickRollup(db.Model):
    """A link's clicks added up per UTC hour, per UTC day and over all time, so statistics
    never read the raw clicks (app/services/rollups.py).

    `period` is "hour", "day" or "all"; `bucket_start` is the start of the UTC hour or day,
    and 1970-01-01 for "all". `dimension` says what `value` is:

    - "total" (value ""): every click, bots and the team's own included, split by `is_bot`
      and `is_internal`.
    - "referrer", "browser", "os", "device", "country": clicks by people (never bots, so
      `is_bot` is false) per value of that field, "" when it was unknown.
    - "visitors" (day only): unique visitors of the UTC day, with `value` the scope: "all"
      people, or "external" ones outside the link's org.

    The key leads with (link_id, period, dimension, bucket_start), so each figure of a
    range is read by one index range scan.
    """

    __tablename__ = "click_rollups"

    # Declared in key order: the primary key is these seven columns, in this order.
    # No foreign key: its check would cost a query per row the click shipper writes. The
    # rows go with their link's org (org_settings.delete_org).
    link_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    period: Mapped[str] = mapped_column(String(4), primary_key=True)
    dimension: Mapped[str] = mapped_column(String(16), primary_key=True)
    bucket_start: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    value: Mapped[str] = mapped_column(String(255), primary_key=True)
    is_bot: Mapped[bool] = mapped_column(Boolean, primary_key=True)
    is_internal: Mapped[bool] = mapped_column(Boolean, primary_key=True)
    clicks: Mapped[int] = mapped_column(BigInteger)


class DailyVisitor(db.Model):
    """One visitor hash seen on a link on one UTC day, with the hours of its first and last
    click that day: what keeps unique-visitor counts exact however clicks are batched.

    `scope` "all" holds every person's visit; "external" only those of people outside the
    link's org. Bots are never visitors.
    """

    __tablename__ = "daily_visitors"

    # No foreign key, as in ClickRollup.
    link_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    scope: Mapped[str] = mapped_column(String(8), primary_key=True)
    visitor_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    first_hour: Mapped[datetime] = mapped_column(UTCDateTime)
    last_hour: Mapped[datetime] = mapped_column(UTCDateTime)
