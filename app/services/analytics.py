"""Per-link click statistics over a time range, read from the click rollups (see
app/services/rollups.py), never from the raw clicks, on SQLite and PostgreSQL.

What counts where:

- `total_clicks` is every click in the range, bots and internal ones included, with
  `bot_clicks` and `internal_clicks` beside it, so nothing recorded is hidden.
- Everything else (`human_clicks`, `unique_visitors`, the time series and the top lists)
  counts people: bots are left out, and clicks by the link's own org only when
  `include_internal` is set.

What "unique visitors" means: a visitor hash changes every UTC day, so visitors are
counted per UTC day, and a range's figure is the sum of its days' figures. Someone who
comes back on three days is three unique visitors over 30 days: that is the price of
never storing IP addresses, and it is also exactly what counting distinct hashes in the
raw clicks gives. The 24-hour range spans two UTC days; it counts yesterday's visitors
whose last click that day fell inside the window and today's whose first click did, so
it is exact too. (It counts their DailyVisitor rows: two days of one link's visitors.)

"All time" reads the all-time rows, less any of days after the range (a clock running
ahead), so a link with years of history costs a few rows per figure; its visitors are the
sum of its days' visitor counts, a few hundred rows a year.
"""

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import func, not_, select, union_all

from app.database import on_postgresql
from app.extensions import db
from app.models import ClickRollup, DailyVisitor
from app.services.rollups import DIMENSION_COLUMNS

RANGES = ("24h", "7d", "30d", "90d", "all")
DEFAULT_RANGE = "7d"
_DAYS_IN_RANGE = {"7d": 7, "30d": 30, "90d": 90}
# "all" is drawn one bar per day; beyond a year the bars get too thin to read.
MAX_DAILY_BUCKETS = 366
TOP_LIMIT = 5


@dataclass(frozen=True)
class Bucket:
    """One bar of the time series: clicks from `start` to the next bucket's start."""

    start: datetime
    count: int


@dataclass(frozen=True)
class TopEntry:
    """One row of a top list; `label` is None for clicks where the value is unknown."""

    label: str | None
    count: int


@dataclass(frozen=True)
class LinkStats:
    """A link's statistics for one range, ready for the stats fragment and the API."""

    range_key: str
    include_internal: bool
    hourly: bool
    total_clicks: int
    bot_clicks: int
    internal_clicks: int
    human_clicks: int
    unique_visitors: int
    series: list[Bucket]
    top_referrers: list[TopEntry]
    top_browsers: list[TopEntry]
    top_oses: list[TopEntry]
    top_devices: list[TopEntry]
    top_countries: list[TopEntry]


def parse_range(value: str | None) -> str:
    """The range a query string asks for, or the default when it names none we know."""
    return value if value in RANGES else DEFAULT_RANGE


@dataclass(frozen=True)
class _Slice:
    """The rollup rows of one period whose buckets start in [since, until), added up
    (sign 1) or taken away (sign -1)."""

    period: str
    since: datetime | None = None
    until: datetime | None = None
    sign: int = 1


def link_stats(link_id: int, range_key: str, *, include_internal: bool, now: datetime) -> LinkStats:
    """Compute a link's totals, time series and top lists for one of RANGES."""
    if range_key not in RANGES:
        raise ValueError(f"unknown range {range_key!r}")
    hourly = range_key == "24h"
    chart_start = _first_bucket_start(range_key, now, link_id)
    step = timedelta(hours=1) if hourly else timedelta(days=1)
    starts = _bucket_starts(chart_start, now, step)
    end = starts[-1] + step
    chart = [_Slice("hour" if hourly else "day", chart_start, end)]
    # "all" counts every click in its totals and lists, even those before the chart starts:
    # the all-time rows, less any of days after the range (a clock running ahead).
    in_range = [_Slice("all"), _Slice("day", since=end, sign=-1)] if range_key == "all" else chart
    days_in_range = [_Slice("day", until=end)] if range_key == "all" else chart

    totals = _totals(link_id, in_range)
    human = sum(
        clicks
        for (is_bot, is_internal), clicks in totals.items()
        if not is_bot and (include_internal or not is_internal)
    )
    scope = "all" if include_internal else "external"
    if hourly:
        visitors = _visitors_in_hours(link_id, chart_start, end, scope)
    else:
        visitors = _sum(link_id, "visitors", days_in_range, scope)
    tops = {
        dimension: _top(link_id, dimension, in_range, include_internal=include_internal)
        for dimension in DIMENSION_COLUMNS
    }
    return LinkStats(
        range_key=range_key,
        include_internal=include_internal,
        hourly=hourly,
        total_clicks=sum(totals.values()),
        bot_clicks=sum(clicks for (is_bot, _), clicks in totals.items() if is_bot),
        internal_clicks=sum(clicks for (_, is_internal), clicks in totals.items() if is_internal),
        human_clicks=human,
        unique_visitors=visitors,
        series=_series(link_id, chart, starts, include_internal=include_internal),
        top_referrers=tops["referrer"],
        top_browsers=tops["browser"],
        top_oses=tops["os"],
        top_devices=tops["device"],
        top_countries=tops["country"],
    )


def _start_of_day(day: date) -> datetime:
    """Midnight UTC at the start of `day`."""
    return datetime.combine(day, time(0), tzinfo=UTC)


def _first_bucket_start(range_key: str, now: datetime, link_id: int) -> datetime:
    """Where the range begins: aligned to its first bucket, so totals match the bars."""
    now = now.astimezone(UTC)
    if range_key == "24h":
        return now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=23)
    today = now.date()
    if range_key in _DAYS_IN_RANGE:
        return _start_of_day(today - timedelta(days=_DAYS_IN_RANGE[range_key] - 1))
    first_day = db.session.execute(
        select(func.min(ClickRollup.bucket_start)).where(
            ClickRollup.link_id == link_id,
            ClickRollup.period == "day",
            ClickRollup.dimension == "total",
        )
    ).scalar_one()
    earliest_shown = today - timedelta(days=MAX_DAILY_BUCKETS - 1)
    if first_day is None:
        return _start_of_day(today)
    # Older clicks still count in the totals and lists; only the chart stops at a year.
    return _start_of_day(max(first_day.date(), earliest_shown))


def _bucket_starts(first: datetime, now: datetime, step: timedelta) -> list[datetime]:
    """The start of every bucket from `first` up to `now`, `step` apart."""
    starts = [first]
    while starts[-1] + step <= now:
        starts.append(starts[-1] + step)
    return starts


def _visitors_in_hours(link_id: int, since: datetime, until: datetime, scope: str) -> int:
    """The visitors of a window of whole hours spanning at most two UTC days: the first
    day's visitors last seen inside it and the second day's first seen inside it."""
    first_day, last_day = since.date(), (until - timedelta(hours=1)).date()
    visitors = DailyVisitor.link_id == link_id, DailyVisitor.scope == scope
    seen = [
        (first_day, [DailyVisitor.last_hour >= since, DailyVisitor.last_hour < until]),
        (last_day, [DailyVisitor.first_hour < until]),
    ]
    return sum(
        db.session.execute(
            select(func.count()).where(*visitors, DailyVisitor.day == day, *inside)
        ).scalar_one()
        for day, inside in (seen if first_day != last_day else seen[:1])
    )


def _rows(link_id: int, dimension: str, slices: list[_Slice], *columns, where=()):
    """The link's rollup rows of `dimension` in the slices, as a subquery of `columns` and
    their `clicks` (negated in slices taken away).

    Each slice is one range of the primary key (link, period, dimension, bucket start).
    """
    selects = [
        select(
            *columns,
            (ClickRollup.clicks if piece.sign > 0 else -ClickRollup.clicks).label("clicks"),
        ).where(
            ClickRollup.link_id == link_id,
            ClickRollup.period == piece.period,
            ClickRollup.dimension == dimension,
            *([] if piece.since is None else [ClickRollup.bucket_start >= piece.since]),
            *([] if piece.until is None else [ClickRollup.bucket_start < piece.until]),
            *where,
        )
        for piece in slices
    ]
    return (selects[0] if len(selects) == 1 else union_all(*selects)).subquery()


def _totals(link_id: int, slices: list[_Slice]) -> dict[tuple[bool, bool], int]:
    """Every click in the slices, by (is_bot, is_internal)."""
    rows = _rows(link_id, "total", slices, ClickRollup.is_bot, ClickRollup.is_internal)
    grouped = db.session.execute(
        select(rows.c.is_bot, rows.c.is_internal, func.sum(rows.c.clicks)).group_by(
            rows.c.is_bot, rows.c.is_internal
        )
    )
    return {(bool(is_bot), bool(is_internal)): int(n) for is_bot, is_internal, n in grouped}


def _sum(link_id: int, dimension: str, slices: list[_Slice], value: str) -> int:
    """The clicks (or visitors) of one dimension's value in the slices."""
    rows = _rows(link_id, dimension, slices, where=[ClickRollup.value == value])
    return int(db.session.execute(select(func.sum(rows.c.clicks))).scalar_one() or 0)


def _series(
    link_id: int, chart: list[_Slice], starts: list[datetime], *, include_internal: bool
) -> list[Bucket]:
    """People's clicks per bucket of the chart, zero for buckets without any."""
    people = [not_(ClickRollup.is_bot)]
    if not include_internal:
        people.append(not_(ClickRollup.is_internal))
    rows = _rows(link_id, "total", chart, ClickRollup.bucket_start, where=people)
    counts = dict(
        db.session.execute(
            select(rows.c.bucket_start, func.sum(rows.c.clicks)).group_by(rows.c.bucket_start)
        ).all()
    )
    return [Bucket(start=start, count=int(counts.get(start, 0))) for start in starts]


def _top(
    link_id: int, dimension: str, slices: list[_Slice], *, include_internal: bool
) -> list[TopEntry]:
    """The TOP_LIMIT most frequent values of a dimension among people's clicks."""
    where = [] if include_internal else [not_(ClickRollup.is_internal)]
    rows = _rows(link_id, dimension, slices, ClickRollup.value, where=where)
    count = func.sum(rows.c.clicks)
    label = rows.c.value
    if on_postgresql(db.session):
        # Byte order, as SQLite compares, whatever the database's collation.
        label = label.collate("C")
    found = db.session.execute(
        select(rows.c.value, count)
        .group_by(rows.c.value)
        # "All time" less later days can leave a value with nothing in the range.
        .having(count > 0)
        # Ties broken by label, unknown ("") last, so the list is the same on both databases.
        .order_by(count.desc(), rows.c.value == "", label)
        .limit(TOP_LIMIT)
    )
    return [TopEntry(label=value or None, count=int(n)) for value, n in found]
