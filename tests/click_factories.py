"""Rows and visits for the click, analytics and export tests: rows written straight through
the models, visits sent through the public redirect, and the count a dashboard shows."""

import re
from datetime import datetime

from app.extensions import db
from app.models import Click, Link, Membership, Org, User
from app.services import rollups
from tests.link_helpers import link_row, shipped

CHROME_ON_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)
SLACKBOT = "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)"


def make_link(slug: str = "abc", destination: str = "https://example.com/", **fields) -> Link:
    """An org with one owner and a link in it; call inside an app context."""
    org = Org(name=f"Org {slug}", slug=f"org-{slug}")
    user = User(
        oidc_issuer="https://idp.test", oidc_subject=f"owner-{slug}", email=f"{slug}@a.test"
    )
    db.session.add_all([org, user, Membership(org=org, user=user, role="owner")])
    link = Link(org=org, slug=slug, destination=destination, created_by=user, **fields)
    db.session.add(link)
    db.session.commit()
    return link


def add_click(link: Link, at: datetime, **fields) -> Click:
    """A click row on the link at `at`, a human desktop visit unless fields say otherwise,
    added to the rollups as the click shipper would."""
    values = {
        "link_id": link.id,
        "clicked_at": at,
        "referrer_host": None,
        "browser": "Chrome",
        "os": "Windows",
        "device_type": "desktop",
        "is_bot": False,
        "is_internal": False,
        "country": None,
        "visitor_hash": "a" * 64,
    }
    values.update(fields)
    click = Click(**values)
    db.session.add(click)
    rollups.add_clicks([values])
    return click


def visit(
    app, slug: str, *, user_agent=CHROME_ON_WINDOWS, ip="203.0.113.7", method="GET", **headers
):
    """Follow a short link as an anonymous visitor connecting from `ip`.

    The address is the connection's own, so the visit comes from `ip` whether or not the
    app is configured to trust a proxy's X-Forwarded-For. The click is shipped before this
    returns, so the database holds it as the shipper would have stored it.
    """
    response = app.test_client().open(
        f"/{slug}",
        method=method,
        headers={"User-Agent": user_agent, **headers},
        environ_overrides={"REMOTE_ADDR": ip},
    )
    shipped(app)
    return response


def clicks_of(app, slug: str) -> list[Click]:
    """The link's stored clicks, oldest first, detached from the session."""
    with app.app_context():
        link = link_row(app, slug)
        rows = db.session.execute(
            db.select(Click).filter_by(link_id=link.id).order_by(Click.id)
        ).scalars()
        clicks = list(rows)
        for click in clicks:
            db.session.expunge(click)
        return clicks


def shown_click_count(html: str) -> tuple[str, str]:
    """The number a dashboard click count shows, and its tooltip."""
    match = re.search(r'<span class="click-count" title="([^"]*)">(\d+)<', html)
    assert match, "no click count in the HTML"
    return match.group(2), match.group(1)
