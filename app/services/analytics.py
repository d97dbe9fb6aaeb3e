"""Per-link click statistics over a time range, computed in SQL on SQLite and PostgreSQL.

What counts where:

- `total_clicks` is every click in the range, bots and internal ones included, with
  `bot_clicks` and `internal_clicks` beside it, so nothing recorded is hidden.
- Everything else (`human_clicks`, `unique_visitors`, the time series and the top lists)
  counts people: bots are left out, and clicks by the link's own org only when
  `include_internal` is set.
- A visitor hash changes every UTC day, so someone who comes back on three days is
  three unique visitors: that is the price of never storing IP addresses.
"""

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import String, and_, case, func, not_, true

from app.extensions import db
from app.models import Click

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


def link_stats(link_id: int, range_key: str, *, include_internal: bool, now: datetime) -> LinkStats:
    """Compute a link's totals, time series and top lists for one of RANGES."""
    if range_key not in RANGES:
        raise ValueError(f"unknown range {range_key!r}")
    hourly = range_key == "24h"
    in_link = Click.link_id == link_id
    counted = and_(not_(Click.is_bot), true() if include_internal else not_(Click.is_internal))

    chart_start = _first_bucket_start(range_key, now, link_id)
    step = timedelta(hours=1) if hourly else timedelta(days=1)
    starts = _bucket_starts(chart_start, now, step)
    end = starts[-1] + step
    # "all" counts every click in its totals and lists, even those before the chart starts.
    since = None if range_key == "all" else chart_start
    in_range = and_(
        in_link,
        true() if since is None else Click.clicked_at >= since,
        Click.clicked_at < end,
    )
    totals = db.session.execute(
        db.select(
            func.count(Click.id).label("total"),
            func.count(case((Click.is_bot, 1))).label("bots"),
            func.count(case((Click.is_internal, 1))).label("internal"),
            func.count(case((counted, 1))).label("human"),
            func.count(func.distinct(case((counted, Click.visitor_hash)))).label("unique"),
        ).where(in_range)
    ).one()

    human_in_range = and_(in_range, counted)
    return LinkStats(
        range_key=range_key,
        include_internal=include_internal,
        hourly=hourly,
        total_clicks=totals.total,
        bot_clicks=totals.bots,
        internal_clicks=totals.internal,
        human_clicks=totals.human,
        unique_visitors=totals.unique,
        series=_series(human_in_range, starts, hourly=hourly),
        top_referrers=_top(Click.referrer_host, human_in_range),
        top_browsers=_top(Click.browser, human_in_range),
        top_oses=_top(Click.os, human_in_range),
        top_devices=_top(Click.device_type, human_in_range),
        top_countries=_top(Click.country, human_in_range),
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
    first_click = db.session.execute(
        db.select(func.min(Click.clicked_at)).where(Click.link_id == link_id)
    ).scalar_one()
    earliest_shown = today - timedelta(days=MAX_DAILY_BUCKETS - 1)
    if first_click is None:
        return _start_of_day(today)
    # Older clicks still count in the totals and lists; only the chart stops at a year.
    return _start_of_day(max(first_click.date(), earliest_shown))


def _bucket_key(hourly: bool):
    """A SQL expression naming a click's UTC hour or day as text, on either database."""
    if db.session.get_bind().dialect.name == "postgresql":
        # timestamptz is truncated in the session's time zone unless told UTC.
        utc_wall_clock = func.timezone("UTC", Click.clicked_at)
        pattern = "YYYY-MM-DD HH24" if hourly else "YYYY-MM-DD"
        return func.to_char(utc_wall_clock, pattern, type_=String)
    # SQLite keeps the UTC value as text "YYYY-MM-DD HH:MM:SS.ffffff".
    return func.substr(Click.clicked_at, 1, 13 if hourly else 10, type_=String)


def _bucket_starts(first: datetime, now: datetime, step: timedelta) -> list[datetime]:
    """The start of every bucket from `first` up to `now`, `step` apart."""
    starts = [first]
    while starts[-1] + step <= now:
        starts.append(starts[-1] + step)
    return starts


def _series(condition, starts: list[datetime], *, hourly: bool) -> list[Bucket]:
    """Clicks meeting `condition` counted per bucket, zero for buckets without any."""
    key = _bucket_key(hourly)
    counts = dict(
        db.session.execute(
            db.select(key, func.count(Click.id)).where(condition).group_by(key)
        ).all()
    )
    text_format = "%Y-%m-%d %H" if hourly else "%Y-%m-%d"
    return [
        Bucket(start=start, count=counts.get(start.strftime(text_format), 0)) for start in starts
    ]


def _top(column, condition) -> list[TopEntry]:
    """The TOP_LIMIT most frequent values of `column` among clicks meeting `condition`."""
    count = func.count(Click.id)
    rows = db.session.execute(
        db.select(column, count)
        .where(condition)
        .group_by(column)
        # Ties broken by label, unknown last, so the list is the same on both databases.
        .order_by(count.desc(), column.is_(None), column)
        .limit(TOP_LIMIT)
    ).all()
    return [TopEntry(label=label, count=n) for label, n in rows]
