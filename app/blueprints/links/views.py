"""Views for `/orgs/<org>/links`: the dashboard and every change to a link.

Each view answers htmx with a fragment from `templates/links/partials/` and everyone else
with the page that includes it (DESIGN.md section 6).
"""

from urllib.parse import parse_qsl

from flask import (
    Response,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask_login import current_user, login_required
from werkzeug.datastructures import MultiDict

from app.blueprints.links import bp
from app.extensions import db, link_create_limiter
from app.htmx import current_page_url, is_partial_request, render_page_or_partial
from app.models import utcnow
from app.services import analytics, destinations, slugs
from app.services import links as link_service
from app.services import orgs as org_service
from app.services.charts import bar_chart
from app.services.errors import DomainError, NotFound
from app.services.exports import CSV_CONTENT_TYPE, clicks_csv_rows, csv_lines, links_csv_rows
from app.services.qr import qr_data_uri, qr_download_headers, qr_svg


def short_base_url() -> str:
    """Where short links are served: SHORT_BASE_URL, else this app's own host."""
    return current_app.config.get("SHORT_BASE_URL") or request.host_url.rstrip("/")


@bp.app_template_global()
def short_url(slug: str) -> str:
    """The full short URL people share."""
    return f"{short_base_url()}/{slug}"


bp.add_app_template_filter(destinations.safe_href, "safe_href")
bp.add_app_template_global(destinations.split_for_display, "split_destination")
bp.add_app_template_global(destinations.unicode_destination, "unicode_destination")
bp.add_app_template_global(link_service.link_status, "link_status")
bp.add_app_template_global(link_service.can_change, "can_change_link")
bp.add_app_template_global(link_service.can_delete, "can_delete_links")


def _own_hosts() -> list[str]:
    """The hosts a destination may not point at: our short domain and this app's host."""
    return destinations.own_hosts(current_app.config.get("SHORT_BASE_URL"), request.host)


def _filters(args: MultiDict | None = None) -> dict:
    """The dashboard's search, status filter, "created by me" and page, from a query string."""
    args = request.args if args is None else args
    status = args.get("status", "all")
    return {
        "q": link_service.clean_query(args.get("q", "")),
        "status": status if status in link_service.STATUS_FILTERS else "all",
        "mine": args.get("mine") == "1",
        "before": args.get("before") or None,
    }


def _filters_of_current_page() -> dict:
    """The filters of the dashboard an htmx request was sent from (htmx's HX-Current-URL)."""
    page = current_page_url()
    return _filters(MultiDict(parse_qsl(page.query if page else "")))


def _dashboard(membership, *, status=200, errors=None, values=None):
    """Render the dashboard page, or its table fragment for htmx."""
    filters = _filters()
    now = utcnow()
    link_page = link_service.list_links(membership, current_user, now=now, **filters)
    return render_page_or_partial(
        "links/index.html",
        "links/partials/table.html",
        status=status,
        org=membership.org,
        membership=membership,
        link_page=link_page,
        filters=filters,
        errors=errors or {},
        values=values or {},
        now=now,
    )


def _load(org_slug: str, slug: str):
    """The member's membership and the org's live link with this slug (404 otherwise)."""
    membership = org_service.membership_for(current_user, org_slug)
    return membership, link_service.find_link(membership, slug)


@bp.get("/orgs/<org_slug>/links")
@login_required
def index(org_slug: str):
    """The org's links dashboard: create form, search, filters and pages of links."""
    membership = org_service.membership_for(current_user, org_slug)
    return _dashboard(membership)


@bp.post("/orgs/<org_slug>/links")
@login_required
def create(org_slug: str):
    """Create a link; htmx gets a fresh form plus the new row, errors come back inline."""
    # Per person, not per IP: a whole office may share one address.
    link_create_limiter.count(f"user:{current_user.get_id()}")
    membership = org_service.membership_for(current_user, org_slug)
    form = request.form
    try:
        link = link_service.create_link(
            membership,
            current_user,
            url=form.get("url", ""),
            slug=form.get("slug", ""),
            title=form.get("title", ""),
            expires_at=form.get("expires_at", ""),
            max_clicks=form.get("max_clicks", ""),
            own_hosts=_own_hosts(),
            reserved=slugs.reserved_slugs(current_app.url_map),
            now=utcnow(),
        )
    except DomainError as error:
        if error.field is None:
            raise
        db.session.rollback()
        errors = {error.field: error.message}
        if not is_partial_request():
            return _dashboard(membership, status=error.status_code, errors=errors, values=form)
        body = render_template(
            "links/partials/create_form.html",
            org=membership.org,
            membership=membership,
            errors=errors,
            values=form,
            now=utcnow(),
        )
        return body, error.status_code, {"Vary": "HX-Request"}
    db.session.commit()
    if is_partial_request():
        # The new row goes on top of the list only if the list on screen would show it.
        filters = _filters_of_current_page()
        listed = filters["before"] is None and link_service.is_listed(
            membership,
            current_user,
            link,
            q=filters["q"],
            status=filters["status"],
            mine=filters["mine"],
            now=utcnow(),
        )
        body = render_template(
            "links/partials/create_form.html",
            org=membership.org,
            membership=membership,
            errors={},
            values={},
            created=link,
            created_listed=listed,
            now=utcnow(),
        )
        return body, 201, {"Vary": "HX-Request"}
    flash(f"Created {short_url(link.slug)}", "success")
    return _varies(redirect(url_for("links.index", org_slug=org_slug)))


@bp.get("/orgs/<org_slug>/links/<slug>")
@login_required
def show(org_slug: str, slug: str):
    """One link: its row, details and history (htmx gets just the row)."""
    membership, link = _load(org_slug, slug)
    if is_partial_request():
        return render_page_or_partial(
            "links/show.html",
            "links/partials/row.html",
            membership=membership,
            link=link,
            now=utcnow(),
        )
    short = short_url(link.slug)
    return render_page_or_partial(
        "links/show.html",
        "links/partials/row.html",
        org=membership.org,
        membership=membership,
        link=link,
        changes=link_service.history(link),
        field_labels=link_service.HISTORY_FIELD_LABELS,
        now=utcnow(),
        short_url_value=short,
        qr_data_uri=qr_data_uri(short),
        qr_download_url=url_for("links.qr", org_slug=org_slug, slug=link.slug),
        **_stats_context(org_slug, link),
    )


def _stats_args() -> dict:
    """The query parameters the stats fragment reads, and no others (not `_external`)."""
    return {key: request.args[key] for key in ("range", "internal") if key in request.args}


def _stats_context(org_slug: str, link) -> dict:
    """What the stats fragment needs, for the range and scope the query string asks for."""
    stats = analytics.link_stats(
        link.id,
        analytics.parse_range(request.args.get("range")),
        include_internal=request.args.get("internal") == "1",
        now=utcnow(),
    )
    return {
        "stats": stats,
        "chart": bar_chart(stats.series, hourly=stats.hourly),
        "stats_url": url_for("links.stats", org_slug=org_slug, slug=link.slug),
    }


@bp.get("/orgs/<org_slug>/links/<slug>/stats")
@login_required
def stats(org_slug: str, slug: str):
    """A link's click statistics for one range: the fragment for htmx, else the link page."""
    _membership, link = _load(org_slug, slug)
    if not is_partial_request():
        # The full-page twin is the link page, which includes this fragment.
        return _varies(
            redirect(url_for("links.show", org_slug=org_slug, slug=link.slug, **_stats_args()))
        )
    body = render_template("links/partials/stats.html", **_stats_context(org_slug, link))
    return body, 200, {"Vary": "HX-Request"}


@bp.get("/orgs/<org_slug>/links/<slug>/clicks")
@login_required
def click_count(org_slug: str, slug: str):
    """The link's current clicks by people, with the total in a tooltip, which each
    dashboard row polls for.

    A link deleted since the page loaded answers 204, which htmx does not swap: the row
    stays quiet until the next reload instead of raising an alert every ten seconds.
    """
    membership = org_service.membership_for(current_user, org_slug)
    try:
        link = link_service.find_link(membership, slug)
    except NotFound:
        return "", 204, {"Cache-Control": "no-store"}
    body = render_template("links/partials/click_count.html", link=link)
    return body, 200, {"Cache-Control": "no-store"}


@bp.get("/orgs/<org_slug>/links/<slug>/qr.svg")
@login_required
def qr(org_slug: str, slug: str):
    """Download the QR code of the link's short URL as SVG."""
    _membership, link = _load(org_slug, slug)
    return qr_svg(short_url(link.slug)), 200, qr_download_headers(link.slug)


@bp.get("/orgs/<org_slug>/links.csv")
@login_required
def links_csv(org_slug: str):
    """Export the org's links as CSV, streamed."""
    membership = org_service.membership_for(current_user, org_slug)
    rows = links_csv_rows(
        membership.org_id,
        short_base_url(),
        timeout_seconds=current_app.config["EXPORT_TIMEOUT_SECONDS"],
    )
    return _csv_download(rows, f"{org_slug}-links.csv")


@bp.get("/orgs/<org_slug>/links/<slug>/clicks.csv")
@login_required
def clicks_csv(org_slug: str, slug: str):
    """Export one link's clicks as CSV, one row per click and never an IP address."""
    _membership, link = _load(org_slug, slug)
    rows = clicks_csv_rows(link.id, timeout_seconds=current_app.config["EXPORT_TIMEOUT_SECONDS"])
    return _csv_download(rows, f"{org_slug}-{link.slug}-clicks.csv")


def _csv_download(rows, filename: str) -> Response:
    """Stream CSV rows as a file download that no cache keeps.

    The rows are read as the file is sent, inside the request's context, which
    stream_with_context keeps open until the last row.
    """
    response = Response(stream_with_context(csv_lines(rows)), mimetype=CSV_CONTENT_TYPE)
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/orgs/<org_slug>/links/<slug>/edit")
@login_required
def edit(org_slug: str, slug: str):
    """The edit form for a link, as an inline table row for htmx."""
    membership, link = _load(org_slug, slug)
    link_service.require_can_change(membership, link)
    values = {
        "url": link.destination,
        "title": link.title,
        "expires_at": link_service.expiry_input_value(link.expires_at),
        "max_clicks": link.max_clicks,
    }
    return _edit_form(membership, link, values=values)


def _edit_form(membership, link, *, values, errors=None, status=200):
    """Render the edit form: an inline row for htmx, the edit page otherwise."""
    return render_page_or_partial(
        "links/edit.html",
        "links/partials/edit_row.html",
        status=status,
        org=membership.org,
        membership=membership,
        link=link,
        values=values,
        errors=errors or {},
    )


@bp.route("/orgs/<org_slug>/links/<slug>", methods=["PATCH", "POST"])
@login_required
def update(org_slug: str, slug: str):
    """Change a link's destination, title, expiry or click limit; redirects follow at once."""
    membership, link = _load(org_slug, slug)
    form = request.form
    try:
        link_service.update_link(
            membership,
            current_user,
            link,
            url=form.get("url"),
            title=form.get("title"),
            expires_at=form.get("expires_at"),
            max_clicks=form.get("max_clicks"),
            own_hosts=_own_hosts(),
            now=utcnow(),
        )
    except DomainError as error:
        if error.field is None:
            raise
        db.session.rollback()
        return _edit_form(
            membership,
            link,
            values=request.form,
            errors={error.field: error.message},
            status=error.status_code,
        )
    db.session.commit()
    return _row_or_link_page(membership, link)


@bp.post("/orgs/<org_slug>/links/<slug>/deactivate")
@login_required
def deactivate(org_slug: str, slug: str):
    """Stop a link from redirecting (410) while keeping it and its clicks."""
    return _set_active(org_slug, slug, active=False)


@bp.post("/orgs/<org_slug>/links/<slug>/activate")
@login_required
def activate(org_slug: str, slug: str):
    """Let a deactivated link redirect again."""
    return _set_active(org_slug, slug, active=True)


def _set_active(org_slug: str, slug: str, *, active: bool):
    """Deactivate or reactivate a link and answer with its row or its page."""
    membership, link = _load(org_slug, slug)
    link_service.set_active(membership, current_user, link, active=active, now=utcnow())
    db.session.commit()
    return _row_or_link_page(membership, link)


def _row_or_link_page(membership, link):
    """After a change: the link's row for htmx, a redirect to its page otherwise."""
    if is_partial_request():
        body = render_template(
            "links/partials/row.html", membership=membership, link=link, now=utcnow()
        )
        return body, 200, {"Vary": "HX-Request"}
    return _varies(redirect(url_for("links.show", org_slug=membership.org.slug, slug=link.slug)))


@bp.delete("/orgs/<org_slug>/links/<slug>")
@login_required
def delete(org_slug: str, slug: str):
    """Delete a link (admins and owners); its slug stays retired. htmx gets an empty 200."""
    link = _delete(org_slug, slug)
    dashboard = url_for("links.index", org_slug=org_slug)
    if is_partial_request():
        headers = {"Vary": "HX-Request"}
        # Deleted from its own page, the link leaves nothing to show there.
        on_link_page = url_for("links.show", org_slug=org_slug, slug=link.slug)
        page = current_page_url()
        if page is not None and page.path == on_link_page:
            headers["HX-Redirect"] = dashboard
        return "", 200, headers
    # 303, so the browser follows with a GET rather than repeating the DELETE.
    return _varies(redirect(dashboard, 303))


def _delete(org_slug: str, slug: str):
    """Delete the link as the signed-in admin or owner, commit, and return it."""
    membership, link = _load(org_slug, slug)
    link_service.delete_link(membership, current_user, link, now=utcnow())
    db.session.commit()
    return link


@bp.get("/orgs/<org_slug>/links/<slug>/delete")
@login_required
def confirm_delete(org_slug: str, slug: str):
    """Ask before deleting: the page the Delete button opens when JavaScript is off."""
    membership, link = _load(org_slug, slug)
    link_service.require_can_delete(membership)
    return render_page_or_partial(
        "links/confirm_delete.html",
        "links/partials/confirm_delete.html",
        org=membership.org,
        membership=membership,
        link=link,
    )


@bp.post("/orgs/<org_slug>/links/<slug>/delete")
@login_required
def delete_confirmed(org_slug: str, slug: str):
    """Delete a link once the confirmation page's form is sent, then show the dashboard."""
    link = _delete(org_slug, slug)
    flash(f"Deleted {short_url(link.slug)}; it will not lead anywhere again.", "success")
    return _varies(redirect(url_for("links.index", org_slug=org_slug), 303))


def _varies(response):
    """Mark a response that differs for htmx, so no cache hands one shape to the other."""
    response.vary.add("HX-Request")
    return response
