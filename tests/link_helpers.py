"""Helpers shared by the links and redirect tests: creating links as a user would, and
reading what the database holds."""

from datetime import timedelta

from sqlalchemy import func

from app.extensions import db
from app.models import Link, Org, User, utcnow
from app.services.click_shipping import ship_pending
from app.services.link_cache import changed_slugs, next_version
from tests.conftest import csrf_token

HX = {"HX-Request": "true"}


def dashboard_path(org_slug: str) -> str:
    return f"/orgs/{org_slug}/links"


def post_link(
    client, org_slug: str, url: str = "https://example.com/page", *, htmx=False, **fields
):
    """Submit the create form as this client (with its CSRF token)."""
    data = {"url": url, "csrf_token": csrf_token(client, dashboard_path(org_slug)), **fields}
    return client.post(dashboard_path(org_slug), data=data, headers=HX if htmx else {})


def create_link(client, org_slug: str, slug: str, url: str = "https://example.com/page", **fields):
    """Create a link with a custom slug through the form; fail the test if that fails."""
    response = post_link(client, org_slug, url, slug=slug, **fields)
    assert response.status_code == 302, response.get_data(as_text=True)
    return slug


def mutate(client, method: str, path: str, org_slug: str, *, htmx=True, data=None):
    """Send a non-GET request with the CSRF token in the header, as app.js does for htmx."""
    headers = {"X-CSRFToken": csrf_token(client, dashboard_path(org_slug))}
    if htmx:
        headers.update(HX)
    return client.open(path, method=method, headers=headers, data=data or {})


def link_row(app, slug: str) -> Link | None:
    with app.app_context():
        link = db.session.execute(db.select(Link).filter_by(slug=slug)).scalar_one_or_none()
        if link is not None:
            db.session.expunge(link)
        return link


def shipped(app) -> int:
    """Store every click the app has spooled, as its shipper does within a second; return
    how many there were."""
    with app.app_context():
        total = 0
        while read := ship_pending():
            total += read
        return total


def link_count(app) -> int:
    with app.app_context():
        return db.session.execute(db.select(func.count(Link.id))).scalar_one()


def insert_links(app, org_slug: str, creator_sub: str, slugs: list[str], **fields) -> None:
    """Put links straight into the database, oldest first, a second apart."""
    with app.app_context():
        org = db.session.execute(db.select(Org).filter_by(slug=org_slug)).scalar_one()
        creator = db.session.execute(
            db.select(User).filter_by(oidc_subject=creator_sub)
        ).scalar_one()
        start = utcnow() - timedelta(days=1)
        for position, slug in enumerate(slugs):
            db.session.add(
                Link(
                    org_id=org.id,
                    slug=slug,
                    destination=fields.get("destination", f"https://example.com/{slug}"),
                    title=fields.get("title"),
                    created_by_id=creator.id,
                    created_at=start + timedelta(seconds=position),
                )
            )
        db.session.commit()


def update_row(app, slug: str, **values) -> None:
    """Change a link's row directly, as a legacy row or another process might have,
    stamping it with a new link version as every change of ours does."""
    with app.app_context():
        version = next_version(db.session)
        db.session.execute(db.update(Link).filter_by(slug=slug).values(version=version, **values))
        changed_slugs(db.session).add(slug)
        db.session.commit()
