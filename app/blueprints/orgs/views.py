"""Views for `/` and `/orgs`."""

from datetime import timedelta

from flask import current_app, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from app.blueprints.orgs import bp
from app.extensions import db
from app.htmx import is_partial_request, redirect_after_change, render_page_or_partial
from app.services import orgs as org_service
from app.services.errors import InvalidInput

# The org a browser last opened (its slug); only ever a hint, checked against membership.
LAST_ORG_COOKIE = "linkdeck_last_org"
LAST_ORG_MAX_AGE = timedelta(days=365)


@bp.get("/")
def home():
    """Signed out: the landing page. Signed in: the last used org's dashboard, or the org list."""
    if not current_user.is_authenticated:
        return render_template("orgs/landing.html")
    org = org_service.landing_org(current_user, request.cookies.get(LAST_ORG_COOKIE))
    if org is None:
        return redirect(url_for("orgs.index"))
    return redirect(url_for("links.index", org_slug=org.slug))


@bp.get("/orgs")
@login_required
def index():
    """List the orgs I belong to, with the form to create another."""
    return render_template(
        "orgs/index.html", memberships=org_service.memberships_of(current_user), errors={}
    )


@bp.post("/orgs")
@login_required
def create():
    """Create an org; its creator becomes the owner and lands on its dashboard."""
    try:
        org = org_service.create_org(current_user, request.form.get("name"))
    except InvalidInput as error:
        db.session.rollback()
        return render_page_or_partial(
            "orgs/index.html",
            "orgs/partials/create_form.html",
            status=422,
            memberships=org_service.memberships_of(current_user),
            errors={error.field: error.message},
            values=request.form,
        )
    db.session.commit()
    return redirect_after_change(url_for("links.index", org_slug=org.slug))


@bp.after_app_request
def remember_last_org(response):
    """Remember, in this browser, the org whose page a member last opened, for `GET /`.

    A cookie rather than a column: opening a page must not write to the database, and the
    cookie outlives sign-out, so the next sign-in lands in the same org.
    """
    org_slug = (request.view_args or {}).get("org_slug")
    if (
        org_slug
        and request.method == "GET"
        and response.status_code == 200
        and not is_partial_request()
        and current_user.is_authenticated
        and request.cookies.get(LAST_ORG_COOKIE) != org_slug
    ):
        response.set_cookie(
            LAST_ORG_COOKIE,
            org_slug,
            max_age=LAST_ORG_MAX_AGE,
            httponly=True,
            samesite="Lax",
            secure=current_app.config["SESSION_COOKIE_SECURE"],
        )
    return response


@bp.app_context_processor
def org_switcher():
    """Give every page a way to list the signed-in user's orgs for the header's switcher.

    A function, not a list, so only the pages that show the header run the query.
    """

    def my_memberships():
        """The signed-in user's memberships, or none when signed out."""
        if not current_user.is_authenticated:
            return []
        return org_service.memberships_of(current_user)

    return {"my_memberships": my_memberships}
