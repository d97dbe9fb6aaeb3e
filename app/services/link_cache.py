"""Resolving short links from memory, coherent with the database within a second.

Every change that can alter where a link leads (creating, editing, deactivating or
deleting it, changing its org's private-destination setting, deleting its org) stamps it
with the next value of the one-row `link_version_counter`, in the changing transaction.
Taking that value locks the row until commit, so versions become visible in the order
they were handed out: a worker that has seen version N has seen every change up to N.

Each worker keeps a `LinkCache`: what it resolved (links, and briefly slugs that were
unknown), plus the highest version it has seen. At most once per `refresh_seconds`, before
answering from memory, it asks the database which slugs changed since then and forgets
them; the next visit reads them again. So a change made by any worker of any dyno reaches
every worker within `refresh_seconds` (1 s) plus one query; the worker that made the
change forgets the slug at once, when its transaction commits. Links with a click limit
are never kept: their count, which decides whether they still lead anywhere, changes with
every click.
"""

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

from flask import current_app, has_app_context
from sqlalchemy import BigInteger, event, inspect, literal, select, union_all, update
from sqlalchemy.orm import Session

from app.database import insert_on_conflict
from app.extensions import db
from app.models import Link, LinkVersionCounter, Org, RetiredSlug, UTCDateTime

# session.info key: slugs whose links this transaction changed, forgotten locally at commit.
_CHANGED_SLUGS = "linkdeck_changed_slugs"


@dataclass(slots=True, eq=False)
class LinkTarget:
    """What deciding a redirect needs to know about a link, detached from any session.

    Nothing changes a target once made but `safe_for`: a link's change makes a new one.
    """

    link_id: int
    org_id: int
    destination: str
    allow_private: bool
    is_active: bool
    deleted: bool
    expires_at: datetime | None
    limited: bool
    # A limited link whose people have used up its clicks (read fresh on every visit).
    used_up: bool = False
    # The own hosts `destination` was last found safe to redirect to as it stands
    # (links.resolution_of), so a cached link is validated once, not on every visit.
    safe_for: tuple[str, ...] | None = None


# The slug belonged to a link of a deleted org: gone for good, never unknown.
RETIRED = "retired"


class LinkCache:
    """One worker's resolved links and unknown slugs, refreshed from link versions.

    `changes_since(version)` returns the slugs changed after `version` and the highest
    version among them (or `version` when nothing changed); `current_version()` the
    version to start from. Both run against the database; everything else is memory.
    Safe to share between the threads of one process.
    """

    def __init__(
        self,
        *,
        max_links: int,
        max_unknown: int,
        refresh_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ):
        """Make an empty cache; `clock` measures the refresh interval (tests step it)."""
        self.max_links = max_links
        self.max_unknown = max_unknown
        self.refresh_seconds = refresh_seconds
        self.clock = clock
        self._links: OrderedDict[str, LinkTarget | str] = OrderedDict()
        # Kept apart, so a flood of made-up slugs can not push real links out.
        self._unknown: OrderedDict[str, None] = OrderedDict()
        self._version: int | None = None
        self._checked_at = float("-inf")
        self._lock = threading.Lock()

    def lookup(self, slug: str, load: Callable[[str], LinkTarget | str | None]):
        """The cached target of `slug` (a LinkTarget, RETIRED or None for unknown),
        calling `load(slug)` on a miss and remembering what it found."""
        self.refresh_if_due()
        with self._lock:
            target = self._recall(slug)
            if target is not None or slug in self._unknown:
                return target
        target = load(slug)
        with self._lock:
            if target is None:
                self._remember(self._unknown, slug, None, self.max_unknown)
            elif target is RETIRED or not target.limited:
                self._remember(self._links, slug, target, self.max_links)
        return target

    def peek(self, slug: str) -> LinkTarget | str | None:
        """The cached target of `slug` (a LinkTarget or RETIRED) when memory alone may
        answer for it: the slug is cached and no refresh is due. None otherwise, and then
        `lookup`, in an app context, decides."""
        if self._refresh_due(self.clock()):
            return None
        with self._lock:
            return self._recall(slug)

    def warm(self, targets: Callable[[int], Iterable[tuple[str, LinkTarget]]]) -> int:
        """Fill the cache with `targets(max_links)` (slug, target) pairs; return how many.

        The version is read first: whatever changes while the rows are read is newer than
        it, so the next refresh forgets it again rather than keeping it stale.
        """
        version = current_version()
        loaded = list(targets(self.max_links))
        with self._lock:
            for slug, target in reversed(loaded):
                self._remember(self._links, slug, target, self.max_links)
            self._version = version if self._version is None else min(self._version, version)
            self._checked_at = self.clock()
        return len(loaded)

    def refresh_if_due(self) -> None:
        """Forget what changed elsewhere since the last look, if that was long enough ago."""
        now = self.clock()
        if not self._refresh_due(now):
            return
        if self._version is None:
            # Nothing cached yet, so nothing can be stale: start from the present.
            self._version = current_version()
            self._checked_at = now
            return
        slugs, version = changes_since(self._version)
        with self._lock:
            self._drop(slugs)
            self._version = max(self._version, version)
            self._checked_at = now

    def forget(self, slugs: Iterable[str]) -> None:
        """Drop these slugs now (this process changed them)."""
        with self._lock:
            self._drop(slugs)

    def _refresh_due(self, now: float) -> bool:
        """Tell whether the last look at the database is `refresh_seconds` old at `now`."""
        return now - self._checked_at >= self.refresh_seconds

    def _recall(self, slug: str) -> LinkTarget | str | None:
        """The cached target of `slug`, marked as just used; the caller holds the lock."""
        target = self._links.get(slug)
        if target is not None:
            self._links.move_to_end(slug)
        return target

    def _drop(self, slugs: Iterable[str]) -> None:
        """Drop these slugs, found or unknown; the caller holds the lock."""
        for slug in slugs:
            self._links.pop(slug, None)
            self._unknown.pop(slug, None)

    @staticmethod
    def _remember(entries: OrderedDict, slug: str, value, limit: int) -> None:
        """Keep `value` under `slug`, dropping the least recently used entry when full."""
        entries[slug] = value
        entries.move_to_end(slug)
        while len(entries) > limit:
            entries.popitem(last=False)


def _target_columns():
    """What a LinkTarget is read from: the link's row and its org's private setting."""
    return select(
        Link.slug,
        Link.id,
        Link.org_id,
        Link.destination,
        Org.allow_private_destinations,
        Link.is_active,
        Link.deleted_at,
        Link.expires_at,
        Link.max_clicks,
        Link.human_click_count,
    ).join(Org, Link.org_id == Org.id)


def _target(row) -> LinkTarget:
    """A LinkTarget from a row of `_target_columns()`."""
    return LinkTarget(
        link_id=row.id,
        org_id=row.org_id,
        destination=row.destination,
        allow_private=row.allow_private_destinations,
        is_active=row.is_active,
        deleted=row.deleted_at is not None,
        expires_at=row.expires_at,
        limited=row.max_clicks is not None,
        used_up=row.max_clicks is not None and row.human_click_count >= row.max_clicks,
    )


def load_target(slug: str) -> LinkTarget | str | None:
    """Read what the redirect needs about `slug` from the database (`slug` lower-case)."""
    row = db.session.execute(_target_columns().where(Link.slug == slug)).first()
    if row is None:
        retired = db.session.get(RetiredSlug, slug) is not None
        return RETIRED if retired else None
    return _target(row)


def newest_targets(limit: int) -> Iterator[tuple[str, LinkTarget]]:
    """The newest `limit` live links without a click limit, newest first, for warming a
    worker's cache before its first visitor."""
    rows = db.session.execute(
        _target_columns()
        .where(Link.deleted_at.is_(None), Link.max_clicks.is_(None))
        .order_by(Link.id.desc())
        .limit(limit)
        .execution_options(yield_per=10_000)
    )
    for row in rows:
        yield row.slug, _target(row)
    db.session.rollback()


def warm(app) -> int:
    """Warm `app`'s link cache (a gunicorn worker calls this once it has loaded the app)."""
    with app.app_context():
        return app.extensions["link_cache"].warm(newest_targets)


def current_version() -> int:
    """The highest link version handed out so far (0 before the first change)."""
    value = db.session.execute(select(LinkVersionCounter.value)).scalar()
    return value or 0


def changes_since(version: int) -> tuple[list[str], int]:
    """Slugs of links and retired slugs changed after `version`, and the highest version."""
    changed = union_all(
        select(Link.slug, Link.version).where(Link.version > version),
        select(RetiredSlug.slug, RetiredSlug.version).where(RetiredSlug.version > version),
    )
    rows = db.session.execute(changed).all()
    # Reading needs no transaction kept open: end it, so the pool gets its connection back.
    db.session.rollback()
    return [slug for slug, _ in rows], max((row[1] for row in rows), default=version)


def next_version(session: Session) -> int:
    """Take the next link version, locking the counter row until this transaction ends."""
    table = LinkVersionCounter.__table__
    statement = (
        insert_on_conflict(session, table)
        .values(id=1, value=1)
        .on_conflict_do_update(index_elements=[table.c.id], set_={"value": table.c.value + 1})
        .returning(table.c.value)
    )
    return session.execute(statement).scalar_one()


def _org_change(session: Session, org_id: int) -> int:
    """Take a new version for a change to all of an org's links, and note their slugs as
    changed; return the version."""
    version = next_version(session)
    changed_slugs(session).update(
        session.execute(select(Link.slug).where(Link.org_id == org_id)).scalars()
    )
    return version


def stamp_org_links(session: Session, org_id: int) -> None:
    """Give all of an org's links a new version: something they all depend on changed."""
    session.execute(
        update(Link)
        .where(Link.org_id == org_id)
        .values(version=_org_change(session, org_id), updated_at=Link.updated_at)
        .execution_options(synchronize_session=False)
    )


def retire_org_slugs(session: Session, org_id: int, *, now: datetime) -> None:
    """Keep the slugs of an org about to be deleted as retired, stamped with a new version
    so caches learn they are gone (its links' rows go with the org)."""
    version = _org_change(session, org_id)
    session.execute(
        RetiredSlug.__table__.insert().from_select(
            ["slug", "retired_at", "version"],
            select(Link.slug, literal(now, UTCDateTime), literal(version, BigInteger)).where(
                Link.org_id == org_id
            ),
        )
    )


def changed_slugs(session: Session) -> set[str]:
    """The slugs this session's transaction changed so far, forgotten by this process's
    cache when it commits. Code changing links with Core statements adds to it."""
    return session.info.setdefault(_CHANGED_SLUGS, set())


@event.listens_for(Session, "before_flush")
def _stamp_changed_links(session: Session, flush_context, instances) -> None:
    """Stamp links added or changed in this flush, and the links of orgs whose private
    destination setting changed, with a new version."""
    links = [
        item
        for item in (*session.new, *session.dirty)
        if isinstance(item, Link) and (item in session.new or session.is_modified(item))
    ]
    orgs = [
        item
        for item in session.dirty
        if isinstance(item, Org)
        and inspect(item).attrs.allow_private_destinations.history.has_changes()
    ]
    if links:
        version = next_version(session)
        for link in links:
            link.version = version
        changed_slugs(session).update(link.slug for link in links)
    for org in orgs:
        stamp_org_links(session, org.id)


@event.listens_for(Session, "after_commit")
def _forget_committed_changes(session: Session) -> None:
    """Forget the changed slugs in this process's cache at once; others catch up within
    the refresh interval."""
    slugs = session.info.pop(_CHANGED_SLUGS, None)
    if slugs and has_app_context():
        cache = current_app.extensions.get("link_cache")
        if cache is not None:
            cache.forget(slugs)


@event.listens_for(Session, "after_rollback")
def _drop_rolled_back_changes(session: Session) -> None:
    """Nothing was changed after all."""
    session.info.pop(_CHANGED_SLUGS, None)
