"""Views for org administration: the settings page, deleting the org, and the audit log."""

from flask import flash, redirect, request, url_for
from flask_login import current_user, login_required

from app.blueprints.orgs import bp
from app.extensions import db
from app.htmx import is_partial_request, redirect_after_change, render_page_or_partial
from app.services import audit
from app.services import org_settings as settings_service
from app.services import orgs as org_service
from app.services.errors import InvalidInput


def _settings_page(membership, partial: str, status: int = 200, **extra):
    """Render the settings page, or one of its forms for htmx."""
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
    """The org's settings: rename, auto-join domain and delete (owners only)."""
    membership = org_service.membership_for(current_user, org_slug)
    settings_service.require_settings_access(membership)
    return _settings_page(membership, "orgs/partials/settings_form.html")


@bp.post("/orgs/<org_slug>/settings")
@login_required
def update_settings(org_slug: str):
    """Rename the org, set its auto-join email domain and private destinations (owners only)."""
    membership = org_service.membership_for(current_user, org_slug)
    form = request.form
    try:
        changed = settings_service.update_settings(
            membership,
            form.get("name"),
            form.get("allowed_email_domain"),
            # A checkbox: sent when ticked, absent when not.
            allow_private_destinations=form.get("allow_private_destinations") == "1",
        )
    except InvalidInput as error:
        db.session.rollback()
        return _settings_page(
            membership,
            "orgs/partials/settings_form.html",
            status=422,
            errors={error.field: error.message},
            values=form,
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
    return redirect_after_change(url_for("orgs.index"))


@bp.get("/orgs/<org_slug>/audit")
@login_required
def audit_log(org_slug: str):
    """Who changed what in the org, newest first (admins and owners); htmx gets the table."""
    membership = org_service.membership_for(current_user, org_slug)
    events = audit.recent_events(membership)
    return render_page_or_partial(
        "orgs/audit_log.html",
        "orgs/partials/audit_events.html",
        org=membership.org,
        membership=membership,
        events=events,
        describe=audit.describe,
    )
