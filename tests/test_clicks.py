"""Click recording: visit details without IPs, bot flags, daily salts, spooled clicks the
shipper stores and counts, failures logged. Click limits have their own file,
test_click_limits.py; the shipper's own failures are in test_click_shipping.py."""

import dataclasses
import logging
from datetime import UTC, datetime, timedelta

import pytest
from flask import current_app

from app.config import config_from_environment
from app.extensions import db
from app.models import Click, Link, VisitorSalt
from app.services.clicks import ClickOutcome, Visit, daily_salt, describe_visit, record_visit
from tests.click_factories import CHROME_ON_WINDOWS, make_link
from tests.click_factories import visit as follow_link
from tests.conftest import run_at_once
from tests.link_helpers import shipped

SALT = bytes(range(32))
NOW = datetime(2026, 11, 23, 14, 30, tzinfo=UTC)
IP = "203.0.113.77"
HUMAN_VISIT = Visit(user_agent=CHROME_ON_WINDOWS, referrer=None, remote_addr=IP)


def visit(user_agent=CHROME_ON_WINDOWS, referrer=None, remote_addr=IP, country=None, salt=SALT):
    """The details a click would store for a visit with these request values."""
    return describe_visit(Visit(user_agent, referrer, remote_addr, country), salt=salt)


def count_visit(link_id: int, visit: Visit = HUMAN_VISIT, *, org_id=None, limited=False):
    """Record a visit to the link as the redirect does; call inside an app context."""
    org_id = org_id or db.session.get(Link, link_id).org_id
    spool = current_app.extensions["click_spool"]
    return record_visit(link_id, org_id, visit, limited=limited, now=NOW, spool=spool)


def stored(link_id: int) -> tuple[int, int, list[Click]]:
    """The link's (all clicks, clicks by people, click rows) as the database holds them."""
    db.session.expire_all()
    link = db.session.get(Link, link_id)
    clicks = db.session.execute(
        db.select(Click).filter_by(link_id=link_id).order_by(Click.id)
    ).scalars()
    return link.click_count, link.human_click_count, list(clicks)


@pytest.mark.parametrize(
    ("user_agent", "browser", "os", "device_type"),
    [
        (CHROME_ON_WINDOWS, "Chrome", "Windows", "desktop"),
        (
            "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
            "Firefox",
            "Linux",
            "desktop",
        ),
        (
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko) Version/18.1 Safari/605.1.15",
            "Safari",
            "Mac OS X",
            "desktop",
        ),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
            "Mobile Safari",
            "iOS",
            "mobile",
        ),
        (
            "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 "
            "(KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
            "Chrome Mobile",
            "Android",
            "mobile",
        ),
        (
            "Mozilla/5.0 (iPad; CPU OS 17_7 like Mac OS X) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
            "Mobile Safari",
            "iOS",
            "tablet",
        ),
        (
            "Mozilla/5.0 (Linux; Android 13; SM-X710) AppleWebKit/537.36 "
            "(KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
            "Chrome",
            "Android",
            "tablet",
        ),
        ("SomethingNew/1.0 (Unknown OS)", None, None, "other"),
    ],
)
def test_describe_visit_reads_browser_os_and_device(user_agent, browser, os, device_type):
    details = visit(user_agent)
    assert (details.browser, details.os, details.device_type) == (browser, os, device_type)
    assert details.is_bot is False


@pytest.mark.parametrize(
    ("user_agent", "device_type"),
    [
        (
            "Mozilla/5.0 (Linux; Android 9; KFTRWI) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Silk/120.3.1 like Chrome/120.0.6099.230 Safari/537.36",
            "tablet",
        ),
        (
            "Mozilla/5.0 (Mobile; LYF/F300B/LYF-F300B-001-01-15-130718-i;Android; rv:48.0) "
            "Gecko/48.0 Firefox/48.0 KAIOS/2.5",
            "mobile",
        ),
        (
            "Mozilla/5.0 (Windows Phone 10.0; Android 6.0.1; Microsoft; Lumia 950) "
            "AppleWebKit/537.36 (KHTML, like Gecko) Chrome/52.0.2743.116 Mobile Safari/537.36 "
            "Edge/15.15063",
            "mobile",
        ),
        (
            "Mozilla/5.0 (BlackBerry; U; BlackBerry 9900; en) AppleWebKit/534.11+ "
            "(KHTML, like Gecko) Version/7.1.0.346 Mobile Safari/534.11+",
            "mobile",
        ),
        (
            "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 "
            "(KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
            "desktop",
        ),
        (
            "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
            "desktop",
        ),
        (
            "Mozilla/5.0 (X11; Fedora; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
            "desktop",
        ),
        ("Mozilla/5.0 (X11; FreeBSD amd64; rv:133.0) Gecko/20100101 Firefox/133.0", "desktop"),
    ],
)
def test_less_common_devices_get_their_type(user_agent, device_type):
    assert visit(user_agent).device_type == device_type


@pytest.mark.parametrize(
    "user_agent",
    [
        "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
        "Twitterbot/1.0",
        "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
        "LinkedInBot/1.0 (compatible; Mozilla/5.0; Apache-HttpClient +http://www.linkedin.com)",
        "Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)",
        "WhatsApp/2.23.20.0 A",
        "TelegramBot (like TwitterBot)",
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "curl/8.5.0",
        "python-requests/2.32.3",
        "",
        None,
    ],
)
def test_crawlers_link_previews_and_scripts_are_bots(user_agent):
    details = visit(user_agent)
    assert details.is_bot is True
    assert details.device_type == "bot"


@pytest.mark.parametrize(
    ("referrer", "host"),
    [
        ("https://Mail.Example:8443/inbox?token=secret", "mail.example"),
        ("http://news.ycombinator.com/item?id=1", "news.ycombinator.com"),
        ("https://example.com./", "example.com"),
        ("android-app://com.google.android.gm/", "com.google.android.gm"),
        ("http://[2001:db8::1]:8080/x", "2001:db8::1"),
        ("http://[::1", None),
        ("not a url", None),
        ("https://exa mple.com/", None),
        ("https://<script>/", None),
        ("", None),
        (None, None),
    ],
)
def test_only_the_referrer_host_is_kept(referrer, host):
    assert visit(referrer=referrer).referrer_host == host


@pytest.mark.parametrize(
    ("header", "country"),
    [("de", "DE"), (" FR ", "FR"), ("XX", None), ("T1", None), ("USA", None), ("", None)],
)
def test_country_is_a_two_letter_code_or_nothing(header, country):
    assert visit(country=header).country == country


def test_no_country_without_a_trusted_header():
    assert visit(country=None).country is None


def test_a_prefetch_is_not_a_person(app):
    prefetch = describe_visit(
        Visit(CHROME_ON_WINDOWS, None, IP, purpose="prefetch;anonymous-client-ip"), salt=SALT
    )
    assert prefetch.is_bot is True
    assert visit().is_bot is False


def test_visitor_hash_is_stable_for_one_salt_and_hides_the_ip():
    first, again = visit(), visit()
    assert first.visitor_hash == again.visitor_hash
    assert len(first.visitor_hash) == 64
    assert IP not in first.visitor_hash


def test_visitor_hash_differs_by_ip_user_agent_and_salt():
    base = visit().visitor_hash
    assert visit(remote_addr="203.0.113.78").visitor_hash != base
    assert visit(user_agent="curl/8.5.0").visitor_hash != base
    assert visit(salt=bytes(32)).visitor_hash != base


def test_the_ip_appears_nowhere_in_the_visit_details():
    details = visit(referrer="https://mail.example/?from=203.0.113.77", country="DE")
    for value in dataclasses.astuple(details):
        assert IP not in str(value)


def test_the_daily_salt_is_random_kept_for_the_day_and_replaced_at_midnight(app):
    with app.app_context():
        today = daily_salt(NOW.date())
        assert daily_salt(NOW.date()) == today
        tomorrow = daily_salt((NOW + timedelta(days=1)).date())
        assert tomorrow != today
        assert len(today) == len(tomorrow) == 32
        # Yesterday's salt is gone, so yesterday's hashes can not be recomputed.
        days = db.session.execute(db.select(VisitorSalt.day)).scalars().all()
        assert days == [(NOW + timedelta(days=1)).date()]


def test_a_salt_another_worker_made_is_used(app):
    with app.app_context():
        db.session.add(VisitorSalt(day=NOW.date(), salt="ab" * 32))
        db.session.commit()
        assert daily_salt(NOW.date()) == bytes.fromhex("ab" * 32)


def test_two_workers_hash_one_visitor_with_the_same_salt(app, make_app):
    with app.app_context():
        make_link("shared")
    other_worker = make_app()

    # The first redirect of the day makes the salt; it must be stored, not kept in one
    # worker, or the same person would count once per worker.
    assert follow_link(app, "shared").status_code == 302
    with app.app_context():
        assert db.session.execute(db.select(VisitorSalt.day)).scalars().all() == [
            datetime.now(UTC).date()
        ]
    assert follow_link(other_worker, "shared").status_code == 302
    shipped(app)

    with app.app_context():
        hashes = db.session.execute(db.select(Click.visitor_hash)).scalars().all()
    assert len(hashes) == 2
    assert hashes[0] == hashes[1]


def test_record_visit_spools_the_click_and_the_shipper_stores_and_counts_it(app):
    with app.app_context():
        link = make_link()
        link_id, owner_id = link.id, link.created_by_id
        from_mail = Visit(CHROME_ON_WINDOWS, "https://mail.example/inbox", IP, "DE", None, owner_id)
        assert count_visit(link_id, from_mail) is ClickOutcome.COUNTED
        assert count_visit(link_id) is ClickOutcome.COUNTED
        # The redirect only wrote to its spool; nothing is in the database yet.
        assert stored(link_id) == (0, 0, [])

    assert shipped(app) == 2

    with app.app_context():
        # The owner's own click is recorded but is not one by people.
        click_count, human_click_count, clicks = stored(link_id)
        assert (click_count, human_click_count) == (2, 1)
        first = clicks[0]
        assert first.clicked_at == NOW
        assert (first.referrer_host, first.country, first.is_internal) == (
            "mail.example",
            "DE",
            True,
        )
        assert (first.browser, first.os, first.device_type) == ("Chrome", "Windows", "desktop")
        assert first.visitor_hash == clicks[1].visitor_hash
        assert clicks[1].is_internal is False


def test_a_signed_in_user_of_another_org_is_not_internal(app):
    with app.app_context():
        link_id = make_link("ours").id
        outsider_id = make_link("theirs").created_by_id
        visit = Visit(CHROME_ON_WINDOWS, None, IP, user_id=outsider_id)
        assert count_visit(link_id, visit) is ClickOutcome.COUNTED
    shipped(app)
    with app.app_context():
        assert db.session.execute(db.select(Click.is_internal)).scalar_one() is False
        assert db.session.get(Link, link_id).human_click_count == 1


@pytest.mark.parametrize("limited", [False, True], ids=["shipped", "limited"])
def test_a_click_does_not_count_as_an_edit_of_the_link(app, limited):
    with app.app_context():
        link = make_link(max_clicks=5 if limited else None)
        link_id, edited_at = link.id, link.updated_at
        assert count_visit(link_id, limited=limited) is ClickOutcome.COUNTED
    shipped(app)
    with app.app_context():
        link = db.session.get(Link, link_id)
        assert link.click_count == 1
        assert link.updated_at == edited_at


def test_a_click_on_a_link_deleted_before_shipping_is_dropped_and_logged(app, caplog):
    with app.app_context():
        gone, kept = make_link("gone"), make_link("kept")
        gone_id, kept_id = gone.id, kept.id
        assert count_visit(gone_id) is ClickOutcome.COUNTED
        assert count_visit(kept_id) is ClickOutcome.COUNTED
        # Deleting an org deletes its links' rows; its clicks still wait in the spool.
        db.session.execute(db.delete(Link).filter_by(id=gone_id))
        db.session.commit()

    with caplog.at_level(logging.WARNING, logger="app.services.click_shipping"):
        assert shipped(app) == 2

    assert "event=clicks_of_deleted_links dropped=1" in caplog.text
    with app.app_context():
        # The rest of the batch is stored all the same.
        assert [click.link_id for click in stored(kept_id)[2]] == [kept_id]
        assert db.session.execute(db.select(db.func.count(Click.id))).scalar_one() == 1


def test_a_limited_link_is_dropped_and_logged_when_the_connection_is_gone(app, caplog):
    with app.app_context():
        link = make_link(max_clicks=5)
        link_id, org_id = link.id, link.org_id
        # Close the DBAPI connection under the session, as a database restart would.
        db.session.connection().connection.dbapi_connection.close()
        with caplog.at_level(logging.ERROR, logger="app.services.clicks"):
            assert count_visit(link_id, org_id=org_id, limited=True) is ClickOutcome.DROPPED
    assert f"event=click_dropped link_id={link_id}" in caplog.text
    assert shipped(app) == 0
    with app.app_context():
        assert stored(link_id) == (0, 0, [])


def test_the_session_still_works_after_a_dropped_click(app):
    with app.app_context():
        link = make_link(max_clicks=5)
        link_id, org_id = link.id, link.org_id
        db.session.connection().connection.dbapi_connection.close()
        assert count_visit(link_id, org_id=org_id, limited=True) is ClickOutcome.DROPPED
        # The next visit the same worker serves is counted on a fresh connection.
        assert count_visit(link_id, org_id=org_id, limited=True) is ClickOutcome.COUNTED
    shipped(app)
    with app.app_context():
        click_count, human_click_count, clicks = stored(link_id)
        assert (click_count, human_click_count, len(clicks)) == (1, 1, 1)


def test_a_visit_that_can_not_even_be_described_is_dropped_not_raised(app, caplog):
    with app.app_context():
        link = make_link()
        link_id = link.id
        broken = Visit(user_agent=object(), referrer=None, remote_addr=IP)
        assert count_visit(link_id, broken) is ClickOutcome.DROPPED
    assert "event=click_dropped" in caplog.text
    assert shipped(app) == 0
    with app.app_context():
        assert stored(link_id) == (0, 0, [])


def test_concurrent_clicks_are_all_counted(app, postgres_only):
    with app.app_context():
        link_id = make_link().id

    def click_fifty_times():
        with app.app_context():
            return [count_visit(link_id) for _ in range(50)]

    results = run_at_once(*[click_fifty_times] * 8)

    assert results == [[ClickOutcome.COUNTED] * 50] * 8
    assert shipped(app) == 400
    with app.app_context():
        click_count, _, clicks = stored(link_id)
        assert (click_count, len(clicks)) == (400, 400)


def test_no_country_header_is_trusted_unless_configured(monkeypatch):
    monkeypatch.delenv("COUNTRY_HEADER", raising=False)
    assert config_from_environment()["COUNTRY_HEADER"] is None


def test_the_trusted_country_header_is_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("COUNTRY_HEADER", "CF-IPCountry")
    assert config_from_environment()["COUNTRY_HEADER"] == "CF-IPCountry"


def test_one_ipv6_address_written_two_ways_is_one_visitor():
    short = visit(remote_addr="2001:db8::1").visitor_hash
    assert visit(remote_addr="2001:DB8:0:0::1").visitor_hash == short


def test_a_visit_without_an_address_has_no_visitor_hash():
    assert visit(remote_addr=None).visitor_hash is None
