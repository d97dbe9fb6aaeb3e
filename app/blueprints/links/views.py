"""Views for `/orgs/<org>/links`."""

from flask_login import current_user, login_required

from app.blueprints.links import bp
from app.extensions import db
from app.htmx import render_page_or_partial
from app.services import orgs as org_service


@bp.get("/orgs/<org_slug>/links")
@login_required
def index(org_slug: str):
    """The org's links dashboard."""
    membership = org_service.membership_for(current_user, org_slug)
    org_service.remember_last_org(current_user, membership.org)
    db.session.commit()
    return render_page_or_partial(
        "links/index.html", "links/partials/table.html", org=membership.org, membership=membership
    )
