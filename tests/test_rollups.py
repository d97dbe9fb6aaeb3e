"""Click rollups: the statistics they give equal those computed from the raw clicks, for
random clicks across hour and day boundaries, however the clicks are batched."""

import random
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime, time, timedelta
from functools import partial

import pytest
from sqlalchemy import insert

from app.extensions import db
from app.models import Click
from app.services import rollups
from app.services.analytics import (
    MAX_DAILY_BUCKETS,
    RANGES,
    TOP_LIMIT,
    Bucket,
    LinkStats,
    TopEntry,
    link_stats,
)
from tests.click_factories import make_link
from tests.conftest import run_at_once

NOW = datetime(2026, 11, 23, 14, 30, tzinfo=UTC)
# Moments to read the statistics at: mid-day, either side of midnight and of an hour, and
# one that leaves some clicks in its future.
NOWS = (
    NOW,
    datetime(2026, 11, 23, 0, 0, tzinfo=UTC),
    datetime(2026, 11, 22, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(2026, 11, 23, 23, 0, tzinfo=UTC),
    NOW - timedelta(days=2, minutes=30),
)
_DAYS_IN_RANGE = {"7d": 7, "30d": 30, "90d": 90}
REFERRERS = ("mail.example", "a.example", "ab.example", "news.example", None)
BROWSERS = ("Chrome", "Firefox", "Safari", "Edge", None)
OSES = ("Windows", "Mac OS X", "Android", "iOS", None)
DEVICES = ("desktop", "mobile", "tablet", "other")
COUNTRIES = ("DE", "US", "FR", "BR", None)


# ---- the oracle: the figures straight from raw clicks, as the SQL over clicks gave them


def midnight(moment: datetime) -> datetime:
    """The start of the UTC day `moment` falls in."""
    return datetime.combine(moment.astimezone(UTC).date(), time(0), tzinfo=UTC)


def start_of_hour(moment: datetime) -> datetime:
    """The start of the UTC hour `moment` falls in."""
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def expected_stats(
    clicks: list[Mapping], link_id: int, range_key: str, *, include_internal: bool, now: datetime
) -> LinkStats:
    """What link_stats must answer, computed from the link's raw clicks in Python.

    Unique visitors are distinct (UTC day, visitor hash) pairs: since the hash's salt
    changes every day, that is what counting distinct hashes in the raw clicks gives.
    """
    mine = [click for click in clicks if click["link_id"] == link_id]
    hourly = range_key == "24h"
    step = timedelta(hours=1) if hourly else timedelta(days=1)
    if hourly:
        chart_start = start_of_hour(now) - timedelta(hours=23)
    elif range_key in _DAYS_IN_RANGE:
        chart_start = midnight(now) - timedelta(days=_DAYS_IN_RANGE[range_key] - 1)
    elif mine:
        first = midnight(min(click["clicked_at"] for click in mine))
        chart_start = max(first, midnight(now) - timedelta(days=MAX_DAILY_BUCKETS - 1))
    else:
        chart_start = midnight(now)
    starts = [chart_start]
    while starts[-1] + step <= now:
        starts.append(starts[-1] + step)
    end = starts[-1] + step
    since = None if range_key == "all" else chart_start
    in_range = [
        click
        for click in mine
        if (since is None or click["clicked_at"] >= since) and click["clicked_at"] < end
    ]
    people = [
        click
        for click in in_range
        if not click["is_bot"] and (include_internal or not click["is_internal"])
    ]
    bucket_of = start_of_hour if hourly else midnight
    per_bucket = Counter(bucket_of(click["clicked_at"]) for click in people)

    def top(column: str) -> list[TopEntry]:
        """The most frequent values of a column among people's clicks, unknown last on ties."""
        counts = Counter(click[column] for click in people)
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0] is None, item[0] or ""))
        return [TopEntry(label=label, count=n) for label, n in ranked[:TOP_LIMIT]]

    return LinkStats(
        range_key=range_key,
        include_internal=include_internal,
        hourly=hourly,
        total_clicks=len(in_range),
        bot_clicks=sum(1 for click in in_range if click["is_bot"]),
        internal_clicks=sum(1 for click in in_range if click["is_internal"]),
        human_clicks=len(people),
        unique_visitors=len(
            {
                (click["clicked_at"].date(), click["visitor_hash"])
                for click in people
                if click["visitor_hash"]
            }
        ),
        series=[Bucket(start=start, count=per_bucket[start]) for start in starts],
        top_referrers=top("referrer_host"),
        top_browsers=top("browser"),
        top_oses=top("os"),
        top_devices=top("device_type"),
        top_countries=top("country"),
    )


# ---- random clicks


def random_moment(rng: random.Random) -> datetime:
    """A click time: mostly the last few days around NOW, often right at an hour's or a
    day's edge, sometimes months or years back."""
    roll = rng.random()
    if roll < 0.05:
        moment = NOW - timedelta(days=rng.uniform(370, 800))
    elif roll < 0.35:
        moment = NOW - timedelta(days=rng.uniform(0, 100))
    else:
        moment = NOW + timedelta(hours=rng.uniform(-60, 12))
    edge = rng.random()
    if edge < 0.4:
        # Right before, at or right after the start of an hour (or of a day).
        start = moment.replace(minute=0, second=0, microsecond=0)
        if edge < 0.15:
            start = start.replace(hour=0)
        moment = start + rng.choice([timedelta(microseconds=-1), timedelta(0), timedelta(0, 1)])
    return moment


def random_clicks(rng: random.Random, link_ids: list[int], count: int) -> list[dict]:
    """Clicks as the shipper hands them over: bots, the team's own, unknown values, and a
    few visitor hashes that come back within a day and on other days."""
    hashes = [f"{n:064x}" for n in range(12)]
    clicks = []
    for _ in range(count):
        is_bot = rng.random() < 0.15
        clicks.append(
            {
                "link_id": rng.choice(link_ids),
                "clicked_at": random_moment(rng),
                "referrer_host": rng.choice(REFERRERS),
                "browser": rng.choice(BROWSERS),
                "os": rng.choice(OSES),
                "device_type": "bot" if is_bot else rng.choice(DEVICES),
                "is_bot": is_bot,
                "is_internal": rng.random() < 0.2,
                "country": rng.choice(COUNTRIES),
                "visitor_hash": None if rng.random() < 0.1 else rng.choice(hashes),
            }
        )
    return clicks


def store(clicks: list[dict]) -> None:
    """Insert click rows and add them to the rollups in one transaction, as the shipper does."""
    db.session.execute(insert(Click.__table__), clicks)
    rollups.add_clicks(clicks)
    db.session.commit()


def store_in_batches(rng: random.Random, clicks: list[dict]) -> None:
    """Store the clicks shuffled, in batches of random sizes."""
    shuffled = rng.sample(clicks, len(clicks))
    while shuffled:
        size = rng.randint(1, 60)
        store(shuffled[:size])
        shuffled = shuffled[size:]


def raw_clicks() -> list[dict]:
    """Every click row the database holds, as mappings of its columns."""
    rows = db.session.execute(db.select(Click.__table__)).mappings()
    return [dict(row) for row in rows]


def assert_stats_match_raw_clicks(link_ids: list[int]) -> None:
    """Every range, with and without internal clicks, at every one of NOWS."""
    clicks = raw_clicks()
    for link_id in link_ids:
        for now in NOWS:
            for range_key in RANGES:
                for include_internal in (False, True):
                    expected = expected_stats(
                        clicks, link_id, range_key, include_internal=include_internal, now=now
                    )
                    actual = link_stats(
                        link_id, range_key, include_internal=include_internal, now=now
                    )
                    assert actual == expected, (link_id, now, range_key, include_internal)


def make_links(count: int) -> list[int]:
    """Ids of `count` new links, each in its own org."""
    return [make_link(f"link{n}").id for n in range(count)]


# ---- the statistics from rollups equal those from raw clicks


@pytest.mark.parametrize("seed", range(6))
def test_stats_from_rollups_equal_stats_from_raw_clicks(app, seed):
    rng = random.Random(seed)
    with app.app_context():
        link_ids = make_links(3)
        store_in_batches(rng, random_clicks(rng, link_ids, 300))

        assert_stats_match_raw_clicks(link_ids)


def test_batching_does_not_change_the_stats(app):
    rng = random.Random(42)
    with app.app_context():
        one_batch, many_batches = make_links(2)
        clicks = random_clicks(rng, [one_batch], 250)
        store(clicks)
        store_in_batches(rng, [{**click, "link_id": many_batches} for click in clicks])

        for range_key in RANGES:
            for include_internal in (False, True):
                whole, split = (
                    link_stats(link_id, range_key, include_internal=include_internal, now=NOW)
                    for link_id in (one_batch, many_batches)
                )
                assert whole == split


def test_a_link_without_clicks_has_empty_stats(app):
    with app.app_context():
        link_ids = make_links(1)
        assert_stats_match_raw_clicks(link_ids)


# ---- unique visitors stay exact across batches


def click(link_id: int, at: datetime, visitor: str = "v", **fields) -> dict:
    """One human click of a visitor, as the shipper hands it over."""
    return {
        "link_id": link_id,
        "clicked_at": at,
        "referrer_host": None,
        "browser": "Firefox",
        "os": "Linux",
        "device_type": "desktop",
        "is_bot": False,
        "is_internal": False,
        "country": None,
        "visitor_hash": visitor * 64,
        **fields,
    }


def visitors(link_id: int, range_key: str, *, include_internal=False, now=NOW) -> int:
    """The unique visitors the stats page shows for a range."""
    return link_stats(
        link_id, range_key, include_internal=include_internal, now=now
    ).unique_visitors


def test_a_visitor_in_two_batches_of_one_day_is_one_visitor(app):
    with app.app_context():
        (link_id,) = make_links(1)
        store([click(link_id, NOW - timedelta(hours=3))])
        store([click(link_id, NOW - timedelta(hours=1)), click(link_id, NOW)])

        assert visitors(link_id, "7d") == 1
        assert visitors(link_id, "24h") == 1
        assert link_stats(link_id, "7d", include_internal=False, now=NOW).human_clicks == 3


def test_a_visitor_who_comes_back_another_day_counts_on_each_day(app):
    with app.app_context():
        (link_id,) = make_links(1)
        store([click(link_id, NOW - timedelta(days=1))])
        store([click(link_id, NOW)])

        assert visitors(link_id, "7d") == 2
        assert visitors(link_id, "all") == 2


@pytest.mark.parametrize("late_click_first", [False, True])
def test_the_last_24_hours_count_yesterdays_visitor_seen_again_inside_the_window(
    app, late_click_first
):
    with app.app_context():
        (link_id,) = make_links(1)
        # The window of NOW starts at 15:00 yesterday: the 05:10 click is outside it.
        early = click(link_id, datetime(2026, 11, 22, 5, 10, tzinfo=UTC))
        late = click(link_id, datetime(2026, 11, 22, 20, 10, tzinfo=UTC))
        for batch in [[late], [early]] if late_click_first else [[early], [late]]:
            store(batch)

        assert visitors(link_id, "24h") == 1
        assert link_stats(link_id, "24h", include_internal=False, now=NOW).human_clicks == 1


def test_the_last_24_hours_leave_out_yesterdays_visitor_seen_only_before_the_window(app):
    with app.app_context():
        (link_id,) = make_links(1)
        store([click(link_id, datetime(2026, 11, 22, 14, 59, tzinfo=UTC))])
        store([click(link_id, datetime(2026, 11, 22, 9, 0, tzinfo=UTC))])

        assert visitors(link_id, "24h") == 0
        assert visitors(link_id, "7d") == 1


def test_a_colleague_is_a_visitor_only_when_internal_clicks_are_included(app):
    with app.app_context():
        (link_id,) = make_links(1)
        store([click(link_id, NOW, "c", is_internal=True), click(link_id, NOW, "p")])
        store([click(link_id, NOW, "c")])

        # "c" also clicked signed out, so it is an outside visitor too.
        assert visitors(link_id, "7d") == 2
        assert visitors(link_id, "7d", include_internal=True) == 2
        store([click(link_id, NOW, "d", is_internal=True)])
        assert visitors(link_id, "24h") == 2
        assert visitors(link_id, "24h", include_internal=True) == 3


def test_bots_and_clicks_without_a_hash_are_not_visitors(app):
    with app.app_context():
        (link_id,) = make_links(1)
        store([click(link_id, NOW, "b", is_bot=True), click(link_id, NOW, visitor_hash=None)])

        assert visitors(link_id, "7d", include_internal=True) == 0
        assert visitors(link_id, "24h", include_internal=True) == 0


def test_clicks_need_an_aware_time(app):
    with app.app_context():
        (link_id,) = make_links(1)
        with pytest.raises(ValueError, match="naive datetime"):
            rollups.add_clicks([click(link_id, NOW.replace(tzinfo=None))])


# ---- two shippers at once (PostgreSQL)


def ship(shipper_app, batch: list[dict]) -> None:
    """Store one batch in one transaction on this shipper's own connection."""
    with shipper_app.app_context():
        store(batch)


def test_two_shippers_at_once_keep_the_counts_exact(app, make_app, postgres_only):
    rng = random.Random(7)
    with app.app_context():
        link_ids = make_links(2)
    other = make_app()
    # Both shippers see the same visitors around the same hours, round after round.
    for _ in range(4):
        mine, theirs = random_clicks(rng, link_ids, 200), random_clicks(rng, link_ids, 200)
        run_at_once(partial(ship, app, mine), partial(ship, other, theirs))

    with app.app_context():
        assert_stats_match_raw_clicks(link_ids)
