"""Rows for the click, analytics and export tests, written straight through the models."""

from datetime import datetime

from app.extensions import db
from app.models import Click, Link, Membership, Org, User

CHROME_ON_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)


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
    """A click row on the link at `at`, a human desktop visit unless fields say otherwise."""
    values = {
        "browser": "Chrome",
        "os": "Windows",
        "device_type": "desktop",
        "is_bot": False,
        "is_internal": False,
        "visitor_hash": "a" * 64,
    }
    values.update(fields)
    click = Click(link_id=link.id, clicked_at=at, **values)
    db.session.add(click)
    return click
