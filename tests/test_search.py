"""Dashboard search across pages: every link whose slug, destination or title holds the
text, each exactly once and newest first, however short the text and whichever index
answers it (trigram indexes on PostgreSQL, a scan on SQLite)."""

import re

import pytest
from sqlalchemy import func

from app.extensions import db
from app.models import Link, Org
from tests.link_helpers import HX, dashboard_path, insert_links

# Links whose slug, destination or title holds "launch", a dozen of each, and a dozen
# that do not, created in turns: `slug-00`, `dest-00`, `title-00`, `other-00`, `slug-01`...
MATCHING_KINDS = ("slug", "dest", "title")


def shown_slugs(body: str) -> list[str]:
    """The slugs of the link rows a dashboard page or fragment shows, top to bottom."""
    return re.findall(r'<tr id="link-([a-z0-9-]+)"', body)


def search_every_page(client, org_slug: str, query: str) -> list[list[str]]:
    """Search as this client, following "Older links" to the last page; each page's slugs."""
    pages = []
    path = dashboard_path(org_slug)
    params = {"q": query}
    while True:
        body = client.get(path, query_string=params, headers=HX).get_data(as_text=True)
        pages.append(shown_slugs(body))
        older = re.search(r'<a href="([^"]*before=[^"]+)" rel="next"', body)
        if older is None:
            return pages
        path, params = older.group(1).replace("&amp;", "&"), None


def insert_launch_links(app, org_slug: str) -> None:
    """The links of MATCHING_KINDS and a dozen others, created in turns a second apart."""
    for n in range(12):
        insert_links(app, org_slug, "owner", [f"launch-slug-{n:02d}"])
        insert_links(
            app, org_slug, "owner", [f"dest-{n:02d}"], destination="https://example.com/Launch"
        )
        insert_links(app, org_slug, "owner", [f"title-{n:02d}"], title="Launch party")
        insert_links(app, org_slug, "owner", [f"other-{n:02d}"], title="Quarterly report")


def newest_first_launch_links() -> list[str]:
    """Every link insert_launch_links made that mentions "launch", newest first."""
    return [
        slug
        for n in reversed(range(12))
        for slug in (f"title-{n:02d}", f"dest-{n:02d}", f"launch-slug-{n:02d}")
    ]


@pytest.mark.parametrize(
    "query",
    [
        "launch",
        "LAUNCH",
        "aunc",
        # Too short for a trigram: PostgreSQL scans the org's links, with the same answer.
        "la",
    ],
)
def test_search_pages_through_every_match_once_newest_first(app, owner, acme, query):
    insert_launch_links(app, acme)

    pages = search_every_page(owner, acme, query)

    assert [len(page) for page in pages] == [25, 11]
    assert [slug for page in pages for slug in page] == newest_first_launch_links()


def test_search_pages_exactly_through_links_created_at_the_same_instant(app, owner, acme):
    insert_links(app, acme, "owner", [f"launch-{n:02d}" for n in range(30)])
    with app.app_context():
        org_id = db.session.execute(db.select(Org.id).filter_by(slug=acme)).scalar_one()
        # As a bulk import might store them: one timestamp for all.
        first = db.session.execute(
            db.select(func.min(Link.created_at)).filter_by(org_id=org_id)
        ).scalar_one()
        db.session.execute(db.update(Link).filter_by(org_id=org_id).values(created_at=first))
        db.session.commit()

    pages = search_every_page(owner, acme, "launch")

    # Ties are broken by the order the links were stored in, newest first.
    assert pages == [
        [f"launch-{n:02d}" for n in reversed(range(5, 30))],
        [f"launch-{n:02d}" for n in reversed(range(5))],
    ]


@pytest.mark.parametrize(
    ("query", "found"),
    [("%", ["half-off"]), ("100%", ["half-off"]), ("_", []), ("launch%", [])],
)
def test_search_treats_like_wildcards_as_plain_characters(app, owner, acme, query, found):
    insert_links(app, acme, "owner", ["launch-day"], title="Launch day")
    insert_links(app, acme, "owner", ["half-off"], title="Save 100% now")

    assert search_every_page(owner, acme, query) == [found]
