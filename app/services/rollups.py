"""Click rollups: per-link counts per UTC hour, per UTC day and over all time, which the
statistics read instead of the raw clicks (see ClickRollup and DailyVisitor in
app/models.py).

The click shipper calls `add_clicks` with each batch, in the batch's transaction, so the
rollups always hold exactly the stored clicks. What a batch adds, per hour, per day and
over all time:

- "total" rows count every click, bots and the team's own included, by `is_bot` and
  `is_internal`.
- One row per dimension ("referrer", "browser", "os", "device", "country") and value
  counts people's clicks: bot clicks are left out, because the top lists show people only.
  An unknown value is stored as "".
- Unique visitors: a visitor is a visitor hash on one UTC day (the hash's salt changes
  every day, so the same person on another day is another visitor). Each (link, day,
  scope, hash) is one DailyVisitor row holding the hours of its first and last click;
  scope "all" counts every person, "external" only those outside the link's org. A
  hash's first insert adds 1 to the day's "visitors" count; a later click only moves the
  row's first or last hour. A count changes only in the transaction that inserts the
  visitor row behind it, so the counts stay exact however clicks are batched and in
  whatever order batches arrive.

Every row written costs the shipper and the database alike, and a click on a link not yet
clicked in its hour writes one row per figure, so only what a read could not add up
quickly is stored (app/services/analytics.py): unique visitors over several days are sums
of the days' counts, and the 24-hour range counts its visitors' rows.

Two shippers (one per dyno) may add clicks at the same time on PostgreSQL. A visitor row
is created by INSERT ... ON CONFLICT DO NOTHING, so exactly one of them counts it as new;
the other locks the row (SELECT ... FOR UPDATE) before reading its hours. Every statement
touches its rows in key order, so the two never wait on each other in a circle.

On PostgreSQL the database adds the batch up itself (`_add_in_postgresql`); SQLite, with
local amounts of clicks, takes the Python path. The rows carry their link id without a
foreign key (see ClickRollup), so `delete_org_rollups` deletes them with their org.
"""

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime

from sqlalchemy import Table, delete, select, text, tuple_, update
from sqlalchemy.dialects import postgresql

from app.database import insert_on_conflict, on_postgresql, rows_from_arrays
from app.extensions import db
from app.models import ClickRollup, DailyVisitor, Link

# The bucket_start of the "all" period's rows.
ALL_TIME = datetime(1970, 1, 1, tzinfo=UTC)
# Each dimension of the rollups and the click column it counts.
DIMENSION_COLUMNS = {
    "referrer": "referrer_host",
    "browser": "browser",
    "os": "os",
    "device": "device_type",
    "country": "country",
}
_ROLLUP_KEY = tuple(column.name for column in ClickRollup.__table__.primary_key)
# Visitor rows looked up per statement on SQLite, well within its limit on parameters.
_VISITOR_KEYS_PER_QUERY = 500
# DailyVisitor's columns, key first, as the shipper's rows list them.
_VISITOR_COLUMNS = ["link_id", "day", "scope", "visitor_hash", "first_hour", "last_hour"]
# A visitor row's primary key: link id, UTC day, scope and visitor hash.
VisitorKey = tuple[int, date, str, str]


def add_clicks(clicks: Sequence[Mapping]) -> None:
    """Add a batch of stored clicks to the rollups, in the caller's transaction.

    Each click is a mapping of Click column names: link_id, clicked_at (an aware
    datetime), referrer_host, browser, os, device_type, is_bot, is_internal, country and
    visitor_hash (any of the five dimension columns and the hash may be None). Counts are
    added up in Python first, so the database sees one upsert per rollup row, not per click.
    Never commits or rolls back.
    """
    if not clicks:
        return
    if on_postgresql(db.session):
        _add_in_postgresql(clicks)
        return
    counts = _click_counts(clicks)
    visits = _visits(clicks)
    if visits:
        counts.update(_visitor_counts(visits))
    _add_to_rollups(counts)


def delete_org_rollups(org_id: int) -> None:
    """Delete the rollup and visitor rows of an org's links, with the org about to go.

    The rows have no foreign key to cascade them (see ClickRollup). The links are locked
    first, in id order as the click shipper locks them: that waits for a batch adding to
    them to commit, and a later batch waits for the deletion, then finds the links gone.
    """
    links = select(Link.id).where(Link.org_id == org_id)
    db.session.execute(links.order_by(Link.id).with_for_update())
    for table in (ClickRollup.__table__, DailyVisitor.__table__):
        db.session.execute(delete(table).where(table.c.link_id.in_(links)))


def _hour_start(at: datetime) -> datetime:
    """The start of the UTC hour `at` falls in."""
    if at.tzinfo is None:
        raise ValueError("naive datetime given to the click rollups")
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _click_counts(clicks: Iterable[Mapping]) -> Counter:
    """Each "total" and dimension row's added clicks, keyed like ClickRollup's primary key."""
    # Clicks alike in link, hour and every counted field collapse first: each one stands
    # for 18 rollup rows, and a batch holds many alike.
    alike = Counter(
        (
            click["link_id"],
            _hour_start(click["clicked_at"]),
            bool(click["is_bot"]),
            bool(click["is_internal"]),
            *(click[column] or "" for column in DIMENSION_COLUMNS.values()),
        )
        for click in clicks
    )
    counts = Counter()
    for (link_id, hour, is_bot, is_internal, *values), n in alike.items():
        for period, start in (("hour", hour), ("day", hour.replace(hour=0)), ("all", ALL_TIME)):
            counts[(link_id, period, "total", start, "", is_bot, is_internal)] += n
            if not is_bot:
                for dimension, value in zip(DIMENSION_COLUMNS, values, strict=True):
                    counts[(link_id, period, dimension, start, value, False, is_internal)] += n
    return counts


def _visits(clicks: Iterable[Mapping]) -> dict[VisitorKey, tuple[datetime, datetime]]:
    """The first and last hour of each visitor the batch saw, per link, UTC day and scope."""
    visits = {}
    for click in clicks:
        if click["is_bot"] or not click["visitor_hash"]:
            continue
        hour = _hour_start(click["clicked_at"])
        scopes = ("all",) if click["is_internal"] else ("all", "external")
        for scope in scopes:
            key = (click["link_id"], hour.date(), scope, click["visitor_hash"])
            first, last = visits.get(key, (hour, hour))
            visits[key] = (min(first, hour), max(last, hour))
    return visits


def _visitor_counts(visits: dict[VisitorKey, tuple[datetime, datetime]]) -> Counter:
    """Store the batch's visitors and return what that changes in the visitor counts."""
    keys = sorted(visits)
    new = _insert_new_visitors(keys, visits)
    counts = Counter()
    for link_id, day, scope, _ in new:
        day_start = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
        counts[(link_id, "day", "visitors", day_start, scope, False, False)] += 1
    moved = []
    for key, old_first, old_last in _locked_hours([key for key in keys if key not in new]):
        first = min(old_first, visits[key][0])
        last = max(old_last, visits[key][1])
        if (first, last) != (old_first, old_last):
            moved.append((*key, first, last))
    if moved:
        _move_hours(moved)
    return counts


def _insert_new_visitors(
    keys: list[VisitorKey], visits: dict[VisitorKey, tuple[datetime, datetime]]
) -> set[VisitorKey]:
    """Insert the visitor rows that do not exist yet; return the keys of those inserted.

    ON CONFLICT DO NOTHING waits for a concurrent insert of the same row to commit, so of
    two shippers seeing one visitor at the same time exactly one counts it as new.
    """
    table = DailyVisitor.__table__
    rows = [(*key, *visits[key]) for key in keys]
    result = _insert_in_key_order(
        table,
        _VISITOR_COLUMNS,
        rows,
        lambda statement: statement.on_conflict_do_nothing().returning(*table.primary_key.columns),
    )
    return set(result.tuples())


def _locked_hours(keys: list[VisitorKey]) -> list[tuple[VisitorKey, datetime, datetime]]:
    """The stored first and last hour of existing visitor rows, locked until the
    transaction ends so no other shipper moves them meanwhile."""
    if not keys:
        return []
    table = DailyVisitor.__table__
    key_columns = list(table.primary_key.columns)
    if on_postgresql(db.session):
        key_names = [column.name for column in key_columns]
        wanted = [select(rows_from_arrays(key_names, keys, table))]
    else:
        wanted = [
            keys[offset : offset + _VISITOR_KEYS_PER_QUERY]
            for offset in range(0, len(keys), _VISITOR_KEYS_PER_QUERY)
        ]
    found = []
    for some in wanted:
        rows = db.session.execute(
            select(*key_columns, table.c.first_hour, table.c.last_hour)
            .where(tuple_(*key_columns).in_(some))
            .order_by(*key_columns)
            .with_for_update()
        )
        found.extend(
            ((link_id, day, scope, hash_), first, last)
            for link_id, day, scope, hash_, first, last in rows
        )
    return found


def _move_hours(rows: list[tuple]) -> None:
    """Store new first and last hours of visitor rows this transaction has locked (each
    row the values of _VISITOR_COLUMNS)."""
    if not on_postgresql(db.session):
        # Primary keys in the rows make this the ORM's bulk UPDATE by primary key.
        db.session.execute(
            update(DailyVisitor), [dict(zip(_VISITOR_COLUMNS, row, strict=True)) for row in rows]
        )
        return
    table = DailyVisitor.__table__
    moved = rows_from_arrays(_VISITOR_COLUMNS, rows, table)
    db.session.execute(
        update(table)
        .where(*(column == moved.c[column.name] for column in table.primary_key.columns))
        .values(first_hour=moved.c.first_hour, last_hour=moved.c.last_hour)
    )


def _add_to_rollups(counts: Counter) -> None:
    """Add the counts to their rollup rows, creating missing ones, in one upsert."""
    table = ClickRollup.__table__
    rows = [(*key, n) for key, n in counts.items() if n]
    if rows:
        _insert_in_key_order(
            table,
            [*_ROLLUP_KEY, "clicks"],
            rows,
            lambda statement: statement.on_conflict_do_update(
                index_elements=list(table.primary_key.columns),
                set_={"clicks": table.c.clicks + statement.excluded.clicks},
            ),
        )


def _insert_in_key_order(table: Table, names: list[str], rows: list[tuple], on_conflict):
    """Run one INSERT of `rows` (each the values of the columns `names`) with the ON
    CONFLICT clause that `on_conflict` adds; return its result.

    On PostgreSQL the rows go in primary key order, so two shippers take their row locks
    in the same order and never wait on each other in a circle. (SQLite has one writer.)
    """
    if not on_postgresql(db.session):
        return db.session.execute(
            on_conflict(insert_on_conflict(db.session, table)),
            [dict(zip(names, row, strict=True)) for row in rows],
        )
    source = rows_from_arrays(names, rows, table)
    ordered = select(source).order_by(*(source.c[column.name] for column in table.primary_key))
    insert = postgresql.insert(table).from_select(names, ordered)
    return db.session.execute(on_conflict(insert))


# ---- PostgreSQL: the same rows, added up by the database

# The batch's clicks, staged for the statements below (dropped at the end of add_clicks).
_STAGE_CLICKS = """
CREATE TEMPORARY TABLE rollup_batch (
    link_id bigint, clicked_at timestamptz, referrer_host text, browser text, os text,
    device_type text, country text, is_bot boolean, is_internal boolean, visitor_hash text
)"""
_STAGED_COLUMNS = (
    "link_id",
    "clicked_at",
    "referrer_host",
    "browser",
    "os",
    "device_type",
    "country",
    "is_bot",
    "is_internal",
    "visitor_hash",
)
# Every "total" and dimension row of the batch, as _click_counts adds them up (the
# dimensions of DIMENSION_COLUMNS; ALL_TIME's bucket). The clicks alike in link, hour and
# values are counted first: a batch on a few links then fans out to few rows.
_ADD_CLICKS = """
WITH hours AS (
    SELECT link_id, date_trunc('hour', clicked_at, 'UTC') AS hour, referrer_host, browser,
           os, device_type, country, is_bot, is_internal, count(*)::integer AS clicks
    FROM rollup_batch
    GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9
)
INSERT INTO click_rollups
    (link_id, period, dimension, bucket_start, value, is_bot, is_internal, clicks)
SELECT h.link_id, p.period, d.dimension, p.bucket_start, d.value, d.is_bot, h.is_internal,
       sum(h.clicks)
FROM hours AS h
CROSS JOIN LATERAL (VALUES
    ('hour', h.hour),
    ('day', date_trunc('day', h.hour, 'UTC')),
    ('all', TIMESTAMPTZ '1970-01-01 00:00:00+00')
) AS p (period, bucket_start)
CROSS JOIN LATERAL (VALUES
    ('total', '', h.is_bot),
    ('referrer', coalesce(h.referrer_host, ''), false),
    ('browser', coalesce(h.browser, ''), false),
    ('os', coalesce(h.os, ''), false),
    ('device', coalesce(h.device_type, ''), false),
    ('country', coalesce(h.country, ''), false)
) AS d (dimension, value, is_bot)
WHERE d.dimension = 'total' OR NOT h.is_bot
GROUP BY 1, 2, 3, 4, 5, 6, 7
ORDER BY 1, 2, 3, 4, 5, 6, 7
ON CONFLICT (link_id, period, dimension, bucket_start, value, is_bot, is_internal)
DO UPDATE SET clicks = click_rollups.clicks + excluded.clicks"""
# Each visitor of the batch per link, UTC day and scope, with its first and last hour
# there, as _visits finds them.
_STAGE_VISITS = """
CREATE TEMPORARY TABLE rollup_visits AS
SELECT b.link_id, (b.clicked_at AT TIME ZONE 'UTC')::date AS day, s.scope, b.visitor_hash,
       min(date_trunc('hour', b.clicked_at, 'UTC')) AS first_hour,
       max(date_trunc('hour', b.clicked_at, 'UTC')) AS last_hour
FROM rollup_batch AS b
CROSS JOIN LATERAL (VALUES ('all'), ('external')) AS s (scope)
WHERE NOT b.is_bot AND b.visitor_hash <> '' AND (s.scope = 'all' OR NOT b.is_internal)
GROUP BY 1, 2, 3, 4"""
# Insert the visitors not stored yet, and count each new one on its day.
_ADD_NEW_VISITORS = """
WITH new AS (
    INSERT INTO daily_visitors (link_id, day, scope, visitor_hash, first_hour, last_hour)
    SELECT link_id, day, scope, visitor_hash, first_hour, last_hour FROM rollup_visits
    ORDER BY link_id, day, scope, visitor_hash
    ON CONFLICT DO NOTHING
    RETURNING link_id, day, scope
)
INSERT INTO click_rollups
    (link_id, period, dimension, bucket_start, value, is_bot, is_internal, clicks)
SELECT link_id, 'day', 'visitors', day::timestamp AT TIME ZONE 'UTC', scope, false, false,
       count(*)
FROM new
GROUP BY 1, 2, 3, 4, 5, 6, 7
ORDER BY 1, 2, 3, 4, 5, 6, 7
ON CONFLICT (link_id, period, dimension, bucket_start, value, is_bot, is_internal)
DO UPDATE SET clicks = click_rollups.clicks + excluded.clicks"""
# The stored visitors whose hours the batch widens (a row this batch inserted already
# holds its hours), locked in key order first, so two shippers never wait on each other
# in a circle; then widened.
_LOCK_WIDENED = """
SELECT count(*) FROM (
    SELECT 1 FROM daily_visitors AS stored
    JOIN rollup_visits AS seen USING (link_id, day, scope, visitor_hash)
    WHERE seen.first_hour < stored.first_hour OR seen.last_hour > stored.last_hour
    ORDER BY stored.link_id, stored.day, stored.scope, stored.visitor_hash
    FOR UPDATE OF stored
) AS locked"""
_WIDEN = """
UPDATE daily_visitors AS stored
SET first_hour = least(stored.first_hour, seen.first_hour),
    last_hour = greatest(stored.last_hour, seen.last_hour)
FROM rollup_visits AS seen
WHERE stored.link_id = seen.link_id AND stored.day = seen.day AND stored.scope = seen.scope
    AND stored.visitor_hash = seen.visitor_hash
    AND (seen.first_hour < stored.first_hour OR seen.last_hour > stored.last_hour)"""


def _add_in_postgresql(clicks: Sequence[Mapping]) -> None:
    """add_clicks on PostgreSQL: stage the batch with COPY and let the database add it up.

    The same rows and counts as the Python path above, which SQLite takes. Adding up a
    batch of clicks spread over many links in Python, about 20 rollup rows per click, and
    sending those rows as arrays cost the shipper more than the database spent storing
    them; COPY sends each click once and the statements add up in the database.
    """
    for click in clicks:
        if click["clicked_at"].tzinfo is None:
            raise ValueError("naive datetime given to the click rollups")
    session = db.session
    driver = session.connection().connection.dbapi_connection
    with driver.cursor() as cursor:
        cursor.execute(_STAGE_CLICKS)
        with cursor.copy(f"COPY rollup_batch ({', '.join(_STAGED_COLUMNS)}) FROM STDIN") as copy:
            for click in clicks:
                copy.write_row(
                    [
                        *(click[column] for column in _STAGED_COLUMNS[:7]),
                        bool(click["is_bot"]),
                        bool(click["is_internal"]),
                        click["visitor_hash"] or "",
                    ]
                )
    session.execute(text(_ADD_CLICKS))
    session.execute(text(_STAGE_VISITS))
    # The planner knows nothing of a new table: without counts it may scan every stored
    # visitor to join them.
    session.execute(text("ANALYZE rollup_visits"))
    session.execute(text(_ADD_NEW_VISITORS))
    session.execute(text(_LOCK_WIDENED))
    session.execute(text(_WIDEN))
    session.execute(text("DROP TABLE rollup_batch, rollup_visits"))
