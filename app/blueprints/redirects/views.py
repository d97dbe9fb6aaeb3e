"""Views for /healthz and the public short-link redirect `/<slug>`."""

from flask import current_app, jsonify, redirect, render_template, request
from flask_login import current_user
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from app.blueprints.redirects import bp
from app.extensions import db
from app.models import utcnow
from app.services import links as link_service
from app.services import orgs as org_service
from app.services.clicks import describe_visit, record_click, visitor_hash_key
from app.services.destinations import own_hosts

# What a visitor reads when a short link does not lead anywhere (status, title, message).
_DEAD_ENDS = {
    "unknown": (404, "Link not found", "There is no short link /{slug}. Check the address."),
    "deactivated": (410, "Link deactivated", "The short link /{slug} was deactivated."),
    "deleted": (410, "Link removed", "The short link /{slug} was deleted."),
    "expired": (410, "Link expired", "The short link /{slug} has expired."),
    "unsafe": (410, "Link disabled", "The short link /{slug} has been disabled."),
}


@bp.get("/healthz")
def healthz():
    """Report whether the app can reach its database (503 with Retry-After when it cannot)."""
    try:
        db.session.execute(text("SELECT 1"))
    except SQLAlchemyError:
        db.session.rollback()
        current_app.logger.exception("health check: database unreachable")
        response = jsonify(status="unavailable", database="unreachable")
        response.status_code = 503
        response.headers["Retry-After"] = "30"
    else:
        response = jsonify(status="ok", database="ok")
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/<short_slug:slug>")
def follow(slug: str):
    """Redirect to the link's destination and count the click, or explain why it leads nowhere.

    `/<slug>+` shows where the link goes instead, and HEAD requests are answered without
    being counted: neither is a visit.
    """
    preview = slug.endswith("+")
    if preview:
        slug = slug[:-1]
    now = utcnow()
    hosts = own_hosts(current_app.config.get("SHORT_BASE_URL"), request.host)
    resolution = link_service.resolve(slug, own_hosts=hosts, now=now)
    if resolution.outcome != "redirect":
        response = _dead_end(slug, resolution)
    elif preview:
        page = render_template(
            "redirects/preview.html", slug=slug, destination=resolution.destination
        )
        response = current_app.make_response(page)
    else:
        if request.method == "GET":
            _record_visit(resolution, now)
        response = redirect(resolution.destination, 302)
    # Destinations change and links get deactivated: no browser or proxy may remember this.
    response.headers["Cache-Control"] = "no-store"
    return response


def _record_visit(resolution: link_service.Resolution, now) -> None:
    """Count this request as a click on the link; a failure is logged, never raised."""
    country_header = current_app.config.get("COUNTRY_HEADER")
    details = describe_visit(
        request.headers.get("User-Agent"),
        request.headers.get("Referer"),
        request.remote_addr,
        request.headers.get(country_header) if country_header else None,
        key=visitor_hash_key(current_app.config["SECRET_KEY"]),
        now=now,
    )
    # The team's own clicks are flagged so stats can leave them out; only a request that
    # carries a session can be a member's, so anonymous visitors cost no extra query.
    is_internal = current_user.is_authenticated and org_service.is_member(
        current_user.id, resolution.org_id
    )
    record_click(resolution.link_id, details, is_internal=is_internal, now=now)


def _dead_end(slug: str, resolution: link_service.Resolution):
    """The page for a link that does not redirect: unknown, deactivated, expired or unsafe."""
    if resolution.outcome == "unsafe":
        current_app.logger.error(
            "link %s not redirected: its stored destination fails validation (%s)",
            resolution.link_id,
            resolution.problem,
        )
    code, title, message = _DEAD_ENDS[resolution.outcome]
    page = render_template(
        "errors/error.html", code=code, title=title, message=message.format(slug=slug)
    )
    return current_app.make_response((page, code))
