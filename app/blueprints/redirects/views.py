"""Views for /healthz and the public short-link redirect `/<slug>`."""

from dataclasses import replace

from flask import current_app, jsonify, render_template, request
from flask_login import current_user
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from app.blueprints.redirects import bp
from app.extensions import db, unknown_slug_limiter
from app.fast_redirects import redirect_response, visit_of
from app.models import utcnow
from app.services import links as link_service
from app.services.clicks import ClickOutcome, record_visit
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
    """Report whether the app reaches its database and its rate-limit store.

    Without the database it answers 503 with Retry-After. Without the store it is only
    degraded (200): redirects keep working and limits are counted in memory meanwhile.
    """
    store = "ok" if unknown_slug_limiter.store_reachable() else "unreachable"
    try:
        db.session.execute(text("SELECT 1"))
    except SQLAlchemyError:
        db.session.rollback()
        current_app.logger.exception("health check: database unreachable")
        response = jsonify(status="unavailable", database="unreachable", rate_limit_store=store)
        response.status_code = 503
        response.headers["Retry-After"] = "30"
    else:
        status = "ok" if store == "ok" else "degraded"
        response = jsonify(status=status, database="ok", rate_limit_store=store)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/robots.txt")
def robots_txt():
    """Ask crawlers to keep out: short links are for people, and the dashboard is private."""
    return "User-agent: *\nDisallow: /\n", 200, {"Content-Type": "text/plain; charset=utf-8"}


@bp.get("/<short_slug:slug>")
def follow(slug: str):
    """Redirect to the link's destination and count the click, or explain why it leads nowhere.

    Most visits to a cached link are answered before Flask, by app/fast_redirects.py, the
    same way; this view answers the rest (the first visit, a member's, a dead end).

    `/<slug>+` shows where the link goes instead, and HEAD requests are answered without
    being counted: neither is a visit. Unknown slugs count towards UNKNOWN_SLUG_LIMIT per IP.
    """
    preview = slug.endswith("+")
    if preview:
        slug = slug[:-1]
    now = utcnow()
    hosts = own_hosts(current_app.config.get("SHORT_BASE_URL"), request.host)
    # An unreachable database answers 503 (see register_errorhandlers), never a 404 that
    # a browser could remember as a dead link.
    resolution = link_service.resolve(
        slug, own_hosts=hosts, now=now, cache=current_app.extensions["link_cache"]
    )
    if resolution.outcome == "unknown":
        _count_unknown_slug()
    if resolution.outcome != "redirect":
        response = _dead_end(slug, resolution)
    elif preview:
        page = render_template(
            "redirects/preview.html", slug=slug, destination=resolution.destination
        )
        response = current_app.make_response(page)
    elif request.method == "GET" and _count_visit(resolution, now) is ClickOutcome.LIMIT_REACHED:
        # Another visitor took the last click allowed: the link expired under us.
        response = _dead_end(slug, replace(resolution, outcome="expired"))
    else:
        headers, body = redirect_response(resolution.destination)
        return current_app.response_class(body, 302, headers)
    # Destinations change and links get deactivated: no browser or proxy may remember this.
    response.headers["Cache-Control"] = "no-store"
    return response


def _count_unknown_slug() -> None:
    """Count a miss against the visitor's IP, refusing it with 429 once over the limit.

    Only misses are counted, and only after the lookup, so an office sharing one IP keeps
    its real links however many typos it makes. A guesser over the limit can still tell a
    302 from a 429: long random slugs, not this limit, are what keep links unguessable.
    """
    unknown_slug_limiter.count(request.remote_addr or "")


def _count_visit(resolution: link_service.Resolution, now) -> ClickOutcome:
    """Hand what this request says about its visitor to the click recorder."""
    visit = visit_of(
        request.environ,
        country_header=current_app.config.get("COUNTRY_HEADER"),
        user_id=_signed_in_user_id(),
    )
    return record_visit(
        resolution.link_id,
        resolution.org_id,
        visit,
        limited=resolution.limited,
        now=now,
        spool=current_app.extensions["click_spool"],
    )


def _signed_in_user_id() -> int | None:
    """The visitor's user id if they are signed in here, for telling the team's own clicks.

    Loading the user costs a query, so a request without our session cookie (nearly every
    visitor) does not even look.
    """
    if current_app.config["SESSION_COOKIE_NAME"] not in request.cookies:
        return None
    return current_user.id if current_user.is_authenticated else None


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
