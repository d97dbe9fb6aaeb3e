"""Views for inviting people, revoking invitations, and accepting one by its link."""

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from app.blueprints.orgs import bp
from app.blueprints.orgs.members import members_context
from app.extensions import db
from app.htmx import is_partial_request, render_page_or_partial
from app.models import MAX_INTEGER
from app.services import invitations as invitation_service
from app.services import orgs as org_service
from app.services.errors import InvalidInput


@bp.post("/orgs/<org_slug>/invitations")
@login_required
def invite(org_slug: str):
    """Invite an email with a role; the answer shows the link to send them, once."""
    membership = org_service.membership_for(current_user, org_slug)
    try:
        invitation, token = invitation_service.invite(
            membership, request.form.get("email"), request.form.get("role")
        )
    except InvalidInput as error:
        db.session.rollback()
        return render_page_or_partial(
            "orgs/members.html",
            "orgs/partials/invitations.html",
            status=422,
            **members_context(membership, errors={error.field: error.message}, values=request.form),
        )
    db.session.commit()
    invite_url = url_for("orgs.invitation", token=token, _external=True)
    # Rendered, not redirected: the token is shown this once and never stored in clear.
    return render_page_or_partial(
        "orgs/members.html",
        "orgs/partials/invitations.html",
        **members_context(membership, new_invitation=invitation, invite_url=invite_url),
    )


# An id larger than any stored one is a 404, not a query the database refuses.
@bp.post(f"/orgs/<org_slug>/invitations/<int(max={MAX_INTEGER}):invitation_id>/revoke")
@login_required
def revoke_invitation(org_slug: str, invitation_id: int):
    """Revoke a pending invitation; htmx gets an empty 200 so its row disappears."""
    membership = org_service.membership_for(current_user, org_slug)
    invitation = invitation_service.revoke(membership, invitation_id)
    email = invitation.email
    db.session.commit()
    if is_partial_request():
        return "", 200, {"Vary": "HX-Request"}
    flash(f"The invitation for {email} was revoked.", "info")
    return redirect(url_for("orgs.members", org_slug=org_slug))


@bp.get("/invitations/<token>")
@login_required
def invitation(token: str):
    """Show an invitation to the invited person, with the button to accept it."""
    found, already_member = invitation_service.open_invitation(token, current_user)
    return render_template(
        "orgs/invitation.html", invitation=found, token=token, already_member=already_member
    )


@bp.post("/invitations/<token>")
@login_required
def accept_invitation(token: str):
    """Accept an invitation: join the org with its role and open its dashboard."""
    membership = invitation_service.accept(token, current_user)
    org_slug, org_name = membership.org.slug, membership.org.name
    db.session.commit()
    flash(f"Welcome to {org_name}.", "info")
    return redirect(url_for("links.index", org_slug=org_slug))
