"""Views for the members page: listing, role changes, removal and leaving an org."""

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from app.blueprints.orgs import bp
from app.extensions import db
from app.htmx import is_partial_request, redirect_after_change, render_page_or_partial
from app.models import MAX_INTEGER
from app.services import invitations as invitation_service
from app.services import members as member_service
from app.services import orgs as org_service
from app.services.errors import Conflict, DomainError, NotFound


def members_context(membership, **extra) -> dict:
    """What the members page and its fragments need to render."""
    return {
        "org": membership.org,
        "membership": membership,
        "members": member_service.list_members(membership),
        "invitations": invitation_service.visible_invitations(membership),
        "can_manage": member_service.can_manage,
        "assignable_roles": member_service.assignable_roles(membership),
        "errors": {},
        "values": {},
        **extra,
    }


@bp.get("/orgs/<org_slug>/members")
@login_required
def members(org_slug: str):
    """The org's members and, for admins and owners, its pending invitations."""
    membership = org_service.membership_for(current_user, org_slug)
    return render_page_or_partial(
        "orgs/members.html", "orgs/partials/members.html", **members_context(membership)
    )


def _row_or_raise(org_id: int, viewer_id: int, user_id: int, error: DomainError):
    """Answer a failed row action: htmx gets the row with the message, others the error page.

    Takes plain ids, not the request's membership: after the rollback that object would be
    reloaded, and a concurrent request may have just deleted its row.
    """
    db.session.rollback()
    target = org_service.fresh_membership(org_id, user_id)
    if not is_partial_request() or target is None or isinstance(error, NotFound):
        raise error
    viewer = org_service.fresh_membership(org_id, viewer_id)
    if viewer is None:
        raise error
    return _render_row(viewer, target, error.status_code, row_error=error.message)


def _render_row(
    viewer,
    target,
    status: int = 200,
    row_error: str | None = None,
    row_notice: str | None = None,
):
    """Render one member's table row as the viewer sees it, with an optional message."""
    return (
        render_template(
            "orgs/partials/member_row.html",
            org=viewer.org,
            membership=viewer,
            member=target,
            can_manage=member_service.can_manage,
            assignable_roles=member_service.assignable_roles(viewer),
            row_error=row_error,
            row_notice=row_notice,
        ),
        status,
        {"Vary": "HX-Request"},
    )


# A user id larger than any stored one is a 404, not a query the database refuses.
USER_ID = f"<int(max={MAX_INTEGER}):user_id>"


@bp.post(f"/orgs/<org_slug>/members/{USER_ID}/role")
@login_required
def change_role(org_slug: str, user_id: int):
    """Change a member's role; htmx gets the updated row."""
    membership = org_service.membership_for(current_user, org_slug)
    org_id, viewer_id = membership.org_id, membership.user_id
    try:
        target = member_service.change_role(membership, user_id, request.form.get("role"))
    except DomainError as error:
        return _row_or_raise(org_id, viewer_id, user_id, error)
    db.session.commit()
    changed = f"{target.user.display_name} is now {target.role}."
    members_url = url_for("orgs.members", org_slug=org_slug)
    if is_partial_request():
        viewer = org_service.fresh_membership(org_id, viewer_id)
        # My own role changed, so what I may do on every row changed: reload the page. So
        # too if someone removed me the moment after this change was saved.
        if user_id == viewer_id or viewer is None:
            return redirect_after_change(members_url)
        return _render_row(viewer, target, row_notice=changed)
    flash(changed, "info")
    return redirect(members_url)


@bp.delete(f"/orgs/<org_slug>/members/{USER_ID}")
@bp.post(f"/orgs/<org_slug>/members/{USER_ID}/remove")
@login_required
def remove_member(org_slug: str, user_id: int):
    """Remove a member; htmx gets an empty 200 so the row disappears.

    DELETE is what htmx sends; the POST route serves the same button without JavaScript.
    """
    membership = org_service.membership_for(current_user, org_slug)
    org_id, viewer_id = membership.org_id, membership.user_id
    try:
        removed = member_service.remove_member(membership, user_id)
    except DomainError as error:
        return _row_or_raise(org_id, viewer_id, user_id, error)
    name = removed.user.display_name
    db.session.commit()
    if user_id == current_user.id:
        return redirect_after_change(url_for("orgs.index"))
    if is_partial_request():
        return "", 200, {"Vary": "HX-Request"}
    flash(f"{name} was removed.", "info")
    return redirect(url_for("orgs.members", org_slug=org_slug))


@bp.post("/orgs/<org_slug>/leave")
@login_required
def leave(org_slug: str):
    """Leave the org (the last owner cannot) and go back to the org list."""
    membership = org_service.membership_for(current_user, org_slug)
    org = membership.org
    name = org.name
    try:
        member_service.leave_org(membership)
    except Conflict as error:
        if not is_partial_request():
            raise
        # htmx swaps this answer into the page: say why next to the button, not a whole page.
        return (
            render_template("orgs/partials/leave_form.html", org=org, leave_error=error.message),
            error.status_code,
            {"Vary": "HX-Request"},
        )
    db.session.commit()
    flash(f"You left {name}.", "info")
    return redirect_after_change(url_for("orgs.index"))
