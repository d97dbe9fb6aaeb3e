"""Link statistics: totals side by side, unique visitors, zero-filled UTC buckets, top lists."""

from datetime import UTC, datetime, timedelta

import pytest

from app.extensions import db
from app.models import Link
from app.services.analytics import RANGES, link_stats, parse_range
from tests.click_factories import add_click, make_link, visit

NOW = datetime(2026, 11, 23, 14, 30, tzinfo=UTC)


def stats(link, range_key="7d", include_internal=False, now=NOW):
    return link_stats(link.id, range_key, include_internal=include_internal, now=now)


def test_totals_count_everything_with_bots_and_internal_side_by_side(app):
    with app.app_context():
        link = make_link()
        add_click(link, NOW, visitor_hash="1" * 64)
        add_click(link, NOW, visitor_hash="1" * 64)
        add_click(link, NOW, visitor_hash="2" * 64)
        add_click(link, NOW, is_bot=True, device_type="bot", visitor_hash="3" * 64)
        add_click(link, NOW, is_internal=True, visitor_hash="4" * 64)
        db.session.commit()

        result = stats(link)
        assert result.total_clicks == 5
        assert result.bot_clicks == 1
        assert result.internal_clicks == 1
        assert result.human_clicks == 3
        assert result.unique_visitors == 2


def test_internal_clicks_count_as_human_when_asked(app):
    with app.app_context():
        link = make_link()
        add_click(link, NOW, visitor_hash="1" * 64)
        add_click(link, NOW, is_internal=True, visitor_hash="4" * 64)
        db.session.commit()

        result = stats(link, include_internal=True)
        assert (result.total_clicks, result.internal_clicks) == (2, 1)
        assert (result.human_clicks, result.unique_visitors) == (2, 2)
        assert sum(bucket.count for bucket in result.series) == 2


def test_bots_stay_out_of_the_series_and_top_lists(app):
    with app.app_context():
        link = make_link()
        add_click(link, NOW, is_bot=True, browser="Slackbot", device_type="bot")
        db.session.commit()

        result = stats(link)
        assert result.bot_clicks == 1
        assert sum(bucket.count for bucket in result.series) == 0
        assert result.top_browsers == []
        assert result.top_devices == []


def test_clicks_without_a_visitor_hash_are_not_unique_visitors(app):
    with app.app_context():
        link = make_link()
        add_click(link, NOW, visitor_hash=None)
        db.session.commit()

        result = stats(link)
        assert (result.human_clicks, result.unique_visitors) == (1, 0)


def test_hourly_series_has_24_zero_filled_buckets_ending_this_hour(app):
    with app.app_context():
        link = make_link()
        add_click(link, NOW - timedelta(minutes=5))
        add_click(link, NOW - timedelta(hours=2))
        add_click(link, NOW - timedelta(hours=2, minutes=20))
        add_click(link, NOW - timedelta(hours=24))
        db.session.commit()

        result = stats(link, "24h")
        assert result.hourly is True
        assert len(result.series) == 24
        assert result.series[-1].start == datetime(2026, 11, 23, 14, tzinfo=UTC)
        assert result.series[0].start == datetime(2026, 11, 22, 15, tzinfo=UTC)
        counts = {bucket.start.hour: bucket.count for bucket in result.series}
        assert counts[14] == 1
        assert counts[12] == 2
        assert sum(counts.values()) == 3
        assert result.total_clicks == 3


@pytest.mark.parametrize(("range_key", "days"), [("7d", 7), ("30d", 30), ("90d", 90)])
def test_daily_series_has_one_bucket_per_utc_day_ending_today(app, range_key, days):
    with app.app_context():
        link = make_link()
        add_click(link, NOW)
        add_click(link, datetime(2026, 11, 23, 0, 0, tzinfo=UTC) - timedelta(days=days - 1))
        add_click(link, datetime(2026, 11, 23, 0, 0, tzinfo=UTC) - timedelta(days=days, seconds=1))
        db.session.commit()

        result = stats(link, range_key)
        assert result.hourly is False
        assert len(result.series) == days
        assert result.series[-1].start == datetime(2026, 11, 23, tzinfo=UTC)
        assert (result.series[0].count, result.series[-1].count) == (1, 1)
        assert result.total_clicks == 2


def test_clicks_either_side_of_utc_midnight_land_on_their_own_days(app):
    with app.app_context():
        link = make_link()
        add_click(link, datetime(2026, 11, 22, 23, 59, 59, tzinfo=UTC))
        add_click(link, datetime(2026, 11, 23, 0, 0, 0, tzinfo=UTC))
        add_click(link, datetime(2026, 11, 23, 0, 0, 0, tzinfo=UTC))
        db.session.commit()

        daily = {b.start.day: b.count for b in stats(link, "7d").series}
        assert (daily[22], daily[23]) == (1, 2)
        hourly = {(b.start.day, b.start.hour): b.count for b in stats(link, "24h").series}
        assert (hourly[(22, 23)], hourly[(23, 0)]) == (1, 2)


def test_all_time_starts_on_the_first_click_day(app):
    with app.app_context():
        link = make_link()
        add_click(link, datetime(2026, 11, 20, 8, tzinfo=UTC))
        add_click(link, NOW)
        db.session.commit()

        result = stats(link, "all")
        assert [b.start.day for b in result.series] == [20, 21, 22, 23]
        assert [b.count for b in result.series] == [1, 0, 0, 1]


def test_all_time_charts_at_most_a_year_but_counts_everything(app):
    with app.app_context():
        link = make_link()
        add_click(link, NOW - timedelta(days=800))
        add_click(link, NOW)
        db.session.commit()

        result = stats(link, "all")
        assert len(result.series) == 366
        assert result.total_clicks == 2
        assert result.human_clicks == 2


def test_all_time_without_clicks_is_one_empty_day(app):
    with app.app_context():
        result = stats(make_link(), "all")
        assert [(b.start, b.count) for b in result.series] == [
            (datetime(2026, 11, 23, tzinfo=UTC), 0)
        ]
        assert result.total_clicks == 0


def test_top_lists_rank_by_count_with_unknown_last(app):
    with app.app_context():
        link = make_link()
        for host in ["b.example", "a.example", "a.example", None, None]:
            add_click(link, NOW, referrer_host=host, country="DE")
        for host in ["c.example", "d.example", "e.example", "f.example"]:
            add_click(link, NOW, referrer_host=host)
        db.session.commit()

        result = stats(link)
        assert [(e.label, e.count) for e in result.top_referrers] == [
            ("a.example", 2),
            (None, 2),
            ("b.example", 1),
            ("c.example", 1),
            ("d.example", 1),
        ]
        assert [(e.label, e.count) for e in result.top_countries] == [("DE", 5), (None, 4)]
        assert [(e.label, e.count) for e in result.top_browsers] == [("Chrome", 9)]
        assert [(e.label, e.count) for e in result.top_oses] == [("Windows", 9)]
        assert [(e.label, e.count) for e in result.top_devices] == [("desktop", 9)]


def test_a_link_keeps_its_clicks_when_its_destination_changes(app):
    with app.app_context():
        make_link(destination="https://old.example/")
    visit(app, "abc")
    with app.app_context():
        link = db.session.execute(db.select(Link).filter_by(slug="abc")).scalar_one()
        link.destination = "https://new.example/"
        db.session.commit()
    visit(app, "abc")

    with app.app_context():
        link = db.session.execute(db.select(Link).filter_by(slug="abc")).scalar_one()
        result = stats(link, now=datetime.now(UTC))
        assert result.total_clicks == 2
        assert link.click_count == 2


def test_stats_belong_to_one_link(app):
    with app.app_context():
        link = make_link("abc")
        other = make_link("xyz")
        add_click(other, NOW)
        db.session.commit()

        assert stats(link).total_clicks == 0
        assert stats(other).total_clicks == 1


@pytest.mark.parametrize(("given", "expected"), [("30d", "30d"), ("1y", "7d"), (None, "7d")])
def test_unknown_ranges_fall_back_to_seven_days(given, expected):
    assert parse_range(given) == expected


def test_every_range_computes(app):
    with app.app_context():
        link = make_link()
        add_click(link, NOW)
        db.session.commit()
        for range_key in RANGES:
            assert stats(link, range_key).total_clicks == 1


def test_an_unknown_range_is_a_programming_error(app):
    with app.app_context(), pytest.raises(ValueError, match="unknown range"):
        stats(make_link(), "1y")


def test_buckets_are_utc_whatever_the_database_session_time_zone(
    app_config, postgres_only, request
):
    # PostgreSQL truncates timestamptz in the session's zone; New York would shift days.
    app_config["SQLALCHEMY_ENGINE_OPTIONS"] = {
        "connect_args": {"options": "-c timezone=America/New_York"}
    }
    app = request.getfixturevalue("app")
    with app.app_context():
        link = make_link()
        add_click(link, datetime(2026, 11, 22, 23, 59, 59, tzinfo=UTC))
        add_click(link, datetime(2026, 11, 23, 0, 0, 0, tzinfo=UTC))
        db.session.commit()
        zone = db.session.execute(db.text("SHOW TIME ZONE")).scalar_one()

        daily = {b.start.day: b.count for b in stats(link, "7d").series}
        assert zone == "America/New_York"
        assert (daily[22], daily[23]) == (1, 1)
