"""Views for /healthz and the public short-link redirect `/<slug>`."""

from flask import current_app, jsonify, redirect, render_template, request
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from app.blueprints.redirects import bp
from app.extensions import db
from app.models import utcnow
from app.services import links as link_service
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
    """Redirect to the link's destination, or explain why the link leads nowhere."""
    hosts = own_hosts(current_app.config.get("SHORT_BASE_URL"), request.host)
    resolution = link_service.resolve(slug, own_hosts=hosts, now=utcnow())
    if resolution.outcome == "redirect":
        response = redirect(resolution.destination, 302)
    else:
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
        response = current_app.make_response((page, code))
    # Destinations change and links get deactivated: no browser or proxy may remember this.
    response.headers["Cache-Control"] = "no-store"
    return response
