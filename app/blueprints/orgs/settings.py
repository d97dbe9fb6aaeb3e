"""Views for org administration: the settings page, deleting the org, and the audit log."""

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from app.blueprints.orgs import bp
from app.extensions import db
from app.htmx import is_partial_request, render_page_or_partial
from app.services import audit
from app.services import org_settings as settings_service
from app.services import orgs as org_service
from app.services.errors import InvalidInput


def _settings_page(membership, partial: str, status: int = 200, **extra):
    context = {
        "org": membership.org,
        "membership": membership,
        "errors": {},
        "values": {},
        "delete_errors": {},
        **extra,
    }
    return render_page_or_partial("orgs/settings.html", partial, status=status, **context)


@bp.get("/orgs/<org_slug>/settings")
@login_required
def settings(org_slug: str):
    """The org's settings; admins see them, owners change them."""
    membership = org_service.membership_for(current_user, org_slug)
    org_service.require_role(membership, "admin")
    return _settings_page(membership, "orgs/partials/settings_form.html")


@bp.post("/orgs/<org_slug>/settings")
@login_required
def update_settings(org_slug: str):
    """Rename the org and set its auto-join email domain (owners only)."""
    membership = org_service.membership_for(current_user, org_slug)
    try:
        changed = settings_service.update_settings(
            membership, request.form.get("name"), request.form.get("allowed_email_domain")
        )
    except InvalidInput as error:
        db.session.rollback()
        return _settings_page(
            membership,
            "orgs/partials/settings_form.html",
            status=422,
            errors={error.field: error.message},
            values=request.form,
        )
    db.session.commit()
    message = "Settings saved." if changed else "Nothing to change."
    if is_partial_request():
        return _settings_page(membership, "orgs/partials/settings_form.html", saved=message)
    flash(message, "info")
    return redirect(url_for("orgs.settings", org_slug=org_slug))


@bp.post("/orgs/<org_slug>/delete")
@login_required
def delete(org_slug: str):
    """Delete the org once its name has been typed exactly (owners only)."""
    membership = org_service.membership_for(current_user, org_slug)
    try:
        name = settings_service.delete_org(membership, request.form.get("confirm_name"))
    except InvalidInput as error:
        db.session.rollback()
        return _settings_page(
            membership,
            "orgs/partials/delete_form.html",
            status=422,
            delete_errors={error.field: error.message},
        )
    db.session.commit()
    flash(f"{name} was deleted.", "info")
    destination = url_for("orgs.index")
    if is_partial_request():
        return "", 204, {"HX-Redirect": destination}
    return redirect(destination)


@bp.get("/orgs/<org_slug>/audit")
@login_required
def audit_log(org_slug: str):
    """Who changed what in the org, newest first (admins and owners)."""
    membership = org_service.membership_for(current_user, org_slug)
    events = audit.recent_events(membership)
    return render_template(
        "orgs/audit_log.html",
        org=membership.org,
        membership=membership,
        events=events,
        describe=audit.describe,
    )
