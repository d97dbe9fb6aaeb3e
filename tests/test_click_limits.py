"""Click limits count people: bots, prefetches and the team's own clicks are redirected and
recorded, but leave a limited link's clicks to the people it was meant for.

A limited link is counted as the redirect happens, exactly; its click rows, like every
click, are stored by the shipper (see test_click_shipping.py), so the tests ship before
reading them."""

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from flask import current_app

from app.extensions import db
from app.models import Click, Link
from app.services.clicks import ClickOutcome, Visit, record_visit
from app.services.links import is_expired
from tests.click_factories import (
    CHROME_ON_WINDOWS,
    SLACKBOT,
    clicks_of,
    make_link,
    shown_click_count,
    visit,
)
from tests.conftest import run_at_once
from tests.link_helpers import create_link, link_row, shipped, update_row

NOW = datetime(2026, 11, 23, 14, 30, tzinfo=UTC)
IP = "203.0.113.77"
PERSON = Visit(user_agent=CHROME_ON_WINDOWS, referrer=None, remote_addr=IP)
LINK_PREVIEW = Visit(user_agent=SLACKBOT, referrer=None, remote_addr="198.51.100.1")
PREFETCH = Visit(CHROME_ON_WINDOWS, None, "198.51.100.2", purpose="prefetch")


def count_visit(link_id: int, visit: Visit = PERSON, *, limited=True) -> ClickOutcome:
    """Record a visit to the link as the redirect does; call inside an app context."""
    org_id = db.session.get(Link, link_id).org_id
    spool = current_app.extensions["click_spool"]
    return record_visit(link_id, org_id, visit, limited=limited, now=NOW, spool=spool)


def counters(app, link_id: int) -> tuple[int, int, int]:
    """The link's (all clicks, clicks by people, stored click rows) once the shipper has
    stored what was spooled, read fresh."""
    shipped(app)
    with app.app_context():
        link = db.session.get(Link, link_id)
        rows = db.session.execute(
            db.select(db.func.count(Click.id)).filter_by(link_id=link_id)
        ).scalar_one()
        return link.click_count, link.human_click_count, rows


def link_counts(link_id: int) -> tuple[int, int]:
    """The link's (all clicks, clicks by people) as the database holds them right now."""
    db.session.expire_all()
    link = db.session.get(Link, link_id)
    return link.click_count, link.human_click_count


# Recording a visit


def test_a_limited_link_counts_people_up_to_its_limit_and_no_further(app):
    with app.app_context():
        link_id = make_link(max_clicks=2).id
        outcomes = [count_visit(link_id) for _ in range(3)]
        assert outcomes == [ClickOutcome.COUNTED, ClickOutcome.COUNTED, ClickOutcome.LIMIT_REACHED]
        # Counted before the redirect answers, not when the shipper comes by.
        assert link_counts(link_id) == (2, 2)
    assert counters(app, link_id) == (2, 2, 2)


def test_bots_prefetches_and_the_team_do_not_spend_a_click_limit(app):
    with app.app_context():
        link = make_link(max_clicks=1)
        link_id = link.id
        colleague = Visit(CHROME_ON_WINDOWS, None, IP, user_id=link.created_by_id)
        for visit_ in (LINK_PREVIEW, PREFETCH, colleague):
            assert count_visit(link_id, visit_) is ClickOutcome.COUNTED
        assert counters(app, link_id) == (3, 0, 3)
        assert is_expired(db.session.get(Link, link_id), NOW) is False

        assert count_visit(link_id) is ClickOutcome.COUNTED
    assert counters(app, link_id) == (4, 1, 4)
    internal = [click.is_internal for click in clicks_of(app, "abc")]
    assert internal == [False, False, True, False]


def test_once_people_have_used_up_a_limit_bots_are_refused_too(app):
    with app.app_context():
        link_id = make_link(max_clicks=1).id
        assert count_visit(link_id) is ClickOutcome.COUNTED
        assert count_visit(link_id, LINK_PREVIEW) is ClickOutcome.LIMIT_REACHED
        assert count_visit(link_id) is ClickOutcome.LIMIT_REACHED
    assert counters(app, link_id) == (1, 1, 1)


def test_without_a_limit_every_click_counts_in_all_and_people_apart(app):
    with app.app_context():
        link = make_link()
        colleague = Visit(CHROME_ON_WINDOWS, None, IP, user_id=link.created_by_id)
        link_id = link.id
        for visit_ in (PERSON, LINK_PREVIEW, PREFETCH, colleague, PERSON):
            assert count_visit(link_id, visit_, limited=False) is ClickOutcome.COUNTED
    # The shipper counts them, and tells the colleague's click by its signed-in user id.
    assert counters(app, link_id) == (5, 2, 5)
    internal = [click.is_internal for click in clicks_of(app, "abc")]
    assert internal == [False, False, False, True, False]


def test_concurrent_visitors_can_not_overshoot_a_click_limit(app):
    with app.app_context():
        link_id = make_link(max_clicks=5).id

    def click_four_times():
        with app.app_context():
            return [count_visit(link_id) for _ in range(4)]

    outcomes = [o for batch in run_at_once(*[click_four_times] * 6) for o in batch]

    assert outcomes.count(ClickOutcome.COUNTED) == 5
    assert outcomes.count(ClickOutcome.LIMIT_REACHED) == 19
    assert counters(app, link_id) == (5, 5, 5)


def test_concurrent_link_previews_do_not_take_the_clicks_people_are_allowed(app):
    with app.app_context():
        link_id = make_link(max_clicks=5).id

    def click_four_times(visit_: Visit):
        """A thread's work: record this visit four times, in its own app context."""

        def clicks():
            with app.app_context():
                return [count_visit(link_id, visit_) for _ in range(4)]

        return clicks

    batches = run_at_once(*[click_four_times(PERSON)] * 3, *[click_four_times(LINK_PREVIEW)] * 3)
    people = [outcome for batch in batches[:3] for outcome in batch]
    previews = [outcome for batch in batches[3:] for outcome in batch]

    assert people.count(ClickOutcome.COUNTED) == 5
    assert people.count(ClickOutcome.LIMIT_REACHED) == 7
    # Previews are counted until people use up the limit, refused after; never dropped.
    assert set(previews) <= {ClickOutcome.COUNTED, ClickOutcome.LIMIT_REACHED}
    counted_previews = previews.count(ClickOutcome.COUNTED)
    assert counters(app, link_id) == (5 + counted_previews, 5, 5 + counted_previews)


# Expiry


def test_a_link_is_exhausted_once_people_reach_its_limit(app):
    with app.app_context():
        link = make_link(max_clicks=2, click_count=5, human_click_count=1)
        assert is_expired(link, NOW) is False
        link.human_click_count = 2
        assert is_expired(link, NOW) is True


def test_a_link_without_limits_never_expires(app):
    with app.app_context():
        link = make_link()
        assert is_expired(link, NOW + timedelta(days=3650)) is False


def test_a_link_expires_at_its_expiry_time(app):
    with app.app_context():
        link = make_link(expires_at=NOW)
        assert is_expired(link, NOW - timedelta(seconds=1)) is False
        assert is_expired(link, NOW) is True


# End to end: a one-time link shared in Slack


@pytest.fixture
def once(app, org_team, acme):
    """A one-time link /once, unfurled by Slack, prefetched, tried by a colleague, then used."""
    create_link(org_team["owner"], acme, "once", "https://example.com/secret", max_clicks="1")
    statuses = [
        visit(app, "once", user_agent=SLACKBOT, ip="198.51.100.1").status_code,
        visit(app, "once", ip="198.51.100.2", **{"Sec-Purpose": "prefetch"}).status_code,
        org_team["member"].get("/once", headers={"User-Agent": CHROME_ON_WINDOWS}).status_code,
        visit(app, "once", ip="203.0.113.8").status_code,
    ]
    return statuses


def test_the_person_still_gets_a_one_time_link_after_bots_and_the_team(app, once):
    assert once == [302, 302, 302, 302]
    flags = [(click.is_bot, click.is_internal) for click in clicks_of(app, "once")]
    assert flags == [(True, False), (True, False), (False, True), (False, False)]

    response = visit(app, "once", ip="203.0.113.9")

    assert response.status_code == 410
    assert "expired" in response.get_data(as_text=True)
    assert len(clicks_of(app, "once")) == 4
    link = link_row(app, "once")
    assert (link.click_count, link.human_click_count) == (4, 1)


def test_the_dashboard_shows_clicks_by_people_with_the_total_in_a_tooltip(org_team, acme, once):
    page = org_team["owner"].get(f"/orgs/{acme}/links").get_data(as_text=True)
    row = page.split('id="link-once"', 1)[1].split("</tr>", 1)[0]

    number, tooltip = shown_click_count(row)

    assert number == "1"
    assert tooltip == "1 click by a person; 4 in all, including 3 by bots and your team"
    # Screen readers read the same sentence after the number; the tooltip needs a mouse.
    hidden = "click by a person; 4 in all, including 3 by bots and your team"
    assert f'<span class="visually-hidden"> {hidden}</span>' in row
    assert 'data-status="expired"' in row


def test_the_polled_click_count_matches_the_row(org_team, acme, once):
    response = org_team["owner"].get(f"/orgs/{acme}/links/once/clicks")

    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert shown_click_count(response.get_data(as_text=True)) == (
        "1",
        "1 click by a person; 4 in all, including 3 by bots and your team",
    )


def test_the_link_page_shows_clicks_by_people_and_all_clicks(org_team, acme, once):
    page = org_team["owner"].get(f"/orgs/{acme}/links/once").get_data(as_text=True)

    assert '<dt>Clicks by people</dt>\n    <dd class="human-clicks">1</dd>' in page
    assert '<dt>All clicks</dt>\n    <dd class="all-clicks">4\n' in page
    assert '<dd>1\n      <small class="muted">(clicks by people count; 0 left)</small></dd>' in page


def test_the_links_csv_has_all_clicks_and_clicks_by_people(org_team, acme, once):
    response = org_team["owner"].get(f"/orgs/{acme}/links.csv")
    [row] = csv.DictReader(io.StringIO(response.get_data(as_text=True)))

    assert row["slug"] == "once"
    assert (row["click_count"], row["human_clicks"]) == ("4", "1")
    assert (row["bot_clicks"], row["internal_clicks"]) == ("2", "1")


def test_the_status_filters_count_people_not_bots(app, org_team, acme):
    create_link(org_team["owner"], acme, "limited", "https://example.com/", max_clicks="1")
    update_row(app, "limited", click_count=3)
    owner = org_team["owner"]

    def listed(status: str) -> bool:
        """Tell whether the dashboard, filtered by this status, shows the link."""
        page = owner.get(f"/orgs/{acme}/links?status={status}").get_data(as_text=True)
        return 'id="link-limited"' in page

    assert (listed("active"), listed("expired")) == (True, False)
    update_row(app, "limited", human_click_count=1)
    assert (listed("active"), listed("expired")) == (False, True)
