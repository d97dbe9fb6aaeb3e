"""Invitations: an admin or owner invites an email with a role; the person accepts by link.

The link carries a random token; only its SHA-256 is stored, so reading the database
does not give anyone a working invitation. A token works once and for seven days, and
only for a signed-in user whose verified email is the invited one.
"""

import hashlib
import secrets
from datetime import timedelta

from app.extensions import db
from app.models import Invitation, Membership, User, utcnow
from app.services import audit
from app.services.errors import Conflict, Forbidden, Gone, InvalidInput, NotFound
from app.services.members import add_member, clean_role, forget_departure
from app.services.org_settings import is_domain_label
from app.services.orgs import fresh_membership, has_role, lock_org, require_role

INVITATION_LIFETIME = timedelta(days=7)
MAX_EMAIL_LENGTH = 320


def hash_token(token: str) -> str:
    """The SHA-256 (hex) under which a token is stored."""
    return hashlib.sha256(token.encode()).hexdigest()


def _is_email_domain(domain: str) -> bool:
    """Tell whether every label of the domain is a DNS label, checked in its ASCII form.

    An internationalised label is checked as the xn-- label DNS will carry, so its
    63-character limit is the real one, and the address is kept as typed.
    """
    try:
        labels = [label.encode("idna").decode("ascii") for label in domain.split(".")]
    except UnicodeError:
        return False
    return len(labels) >= 2 and all(is_domain_label(label) for label in labels)


def clean_email(raw: str | None) -> str:
    """Validate an email with a simple rule and return it lower-case.

    One @, something before it, a domain of at least two valid DNS labels, no spaces, at
    most 320 characters. The provider, not this check, proves that the address is real.
    """
    email = (raw or "").strip().lower()
    if not email:
        raise InvalidInput("Enter the email address to invite.", field="email")
    local, _, domain = email.partition("@")
    valid = (
        len(email) <= MAX_EMAIL_LENGTH
        and email.count("@") == 1
        and local
        and not any(ch.isspace() or ord(ch) < 32 for ch in email)
        and _is_email_domain(domain)
    )
    if not valid:
        raise InvalidInput("Enter a valid email address, like ada@example.com.", field="email")
    return email


def invite(
    actor: Membership, raw_email: str | None, raw_role: str | None
) -> tuple[Invitation, str]:
    """Invite an email with a role; return the invitation and its token (shown once).

    Inviting an email that already has a pending invitation replaces it, so only the
    newest link works.
    """
    require_role(actor, "admin")
    email = clean_email(raw_email)
    role = clean_role(raw_role)
    if role == "owner" and actor.role != "owner":
        raise Forbidden("Only an owner can invite an owner.")
    org = lock_org(actor.org_id)
    existing_member = db.session.execute(
        db.select(Membership.id)
        .join(Membership.user)
        .filter(Membership.org_id == org.id, db.func.lower(User.email) == email)
    ).first()
    if existing_member:
        raise InvalidInput(f"{email} is already a member of {org.name}.", field="email")
    now = utcnow()
    for previous in pending_invitations(actor, email=email):
        previous.revoked_at = now
        audit.record(org, actor.user, "invitation.replaced", email, role=previous.role)
    token = secrets.token_urlsafe(32)
    invitation = Invitation(
        org=org,
        email=email,
        role=role,
        token_hash=hash_token(token),
        invited_by_id=actor.user_id,
        expires_at=now + INVITATION_LIFETIME,
    )
    db.session.add(invitation)
    audit.record(org, actor.user, "invitation.created", email, role=role)
    return invitation, token


def pending_invitations(viewer: Membership, email: str | None = None) -> list[Invitation]:
    """The org's invitations that can still be accepted, newest first."""
    query = db.select(Invitation).filter(
        Invitation.org_id == viewer.org_id,
        Invitation.accepted_at.is_(None),
        Invitation.revoked_at.is_(None),
        Invitation.expires_at > utcnow(),
    )
    if email is not None:
        query = query.filter(Invitation.email == email)
    return list(
        db.session.execute(
            query.order_by(Invitation.created_at.desc(), Invitation.id.desc())
        ).scalars()
    )


def visible_invitations(viewer: Membership) -> list[Invitation]:
    """The pending invitations the viewer may see: all for admins and owners, none for members."""
    return pending_invitations(viewer) if has_role(viewer, "admin") else []


def revoke(actor: Membership, invitation_id: int) -> Invitation:
    """Revoke a pending invitation of the actor's org (admins and owners)."""
    require_role(actor, "admin")
    org = lock_org(actor.org_id)
    invitation = db.session.execute(
        db.select(Invitation).filter_by(id=invitation_id, org_id=org.id)
    ).scalar_one_or_none()
    if invitation is None:
        raise NotFound("No such invitation.")
    if invitation.accepted_at is not None or invitation.revoked_at is not None:
        raise Conflict("This invitation is no longer pending.")
    invitation.revoked_at = utcnow()
    audit.record(org, actor.user, "invitation.revoked", invitation.email, role=invitation.role)
    return invitation


def find_by_token(token: str, *, for_update: bool = False) -> Invitation:
    """The invitation for a token that can still be used.

    Raises NotFound for an unknown token and Gone, saying why, for one that was revoked,
    already used or has expired.
    """
    query = db.select(Invitation).filter_by(token_hash=hash_token(token))
    if for_update:
        query = query.with_for_update().execution_options(populate_existing=True)
    invitation = db.session.execute(query).scalar_one_or_none()
    if invitation is None:
        raise NotFound("This invitation link is not valid. Check that you copied all of it.")
    if invitation.revoked_at is not None:
        raise Gone("This invitation was revoked. Ask for a new one.")
    if invitation.accepted_at is not None:
        raise Gone("This invitation has already been used.")
    if invitation.expires_at <= utcnow():
        raise Gone("This invitation has expired. Ask for a new one.")
    return invitation


def open_invitation(token: str, user: User) -> tuple[Invitation, bool]:
    """The invitation a token opens for `user`, and whether they already belong to its org."""
    invitation = find_by_token(token)
    check_invitee(invitation, user)
    return invitation, fresh_membership(invitation.org_id, user.id) is not None


def check_invitee(invitation: Invitation, user: User) -> None:
    """Refuse anyone but the invited person: a verified email equal to the invited one."""
    if not user.email_verified:
        raise Forbidden(
            "Your identity provider has not verified your email address, so this invitation "
            "cannot be accepted with this account."
        )
    if (user.email or "").lower() != invitation.email:
        yours = user.email or "none"
        raise Forbidden(
            f"This invitation was sent to another email address than yours ({yours}). "
            "Sign in with the invited address to accept it."
        )


_A_ROLE = {"owner": "an owner", "admin": "an admin", "member": "a member"}


def check_inviter(invitation: Invitation) -> None:
    """Refuse an invitation that offers more than its sender's role in the org now.

    An invitation grants at most what its sender could grant today: an owner who was
    demoted, removed or deleted since must not keep handing out owner rights by a link
    sent earlier. Call it under the org lock, so the role read is the current one.
    """
    inviter = (
        fresh_membership(invitation.org_id, invitation.invited_by_id)
        if invitation.invited_by_id is not None
        else None
    )
    if inviter is not None and has_role(inviter, invitation.role):
        return
    role = invitation.role
    ask = "an owner" if role == "owner" else "an owner or admin"
    raise Conflict(
        f"This invitation can no longer be accepted: it offers the {role} role, and the "
        f"person who sent it is no longer {_A_ROLE[role]} here. Ask {ask} for a new invitation."
    )


def accept(token: str, user: User) -> Membership:
    """Accept an invitation as `user`: they join with its role and the token is used up.

    Joining by invitation clears any record that they were removed or left, so the
    org's owners can bring back someone auto-join keeps out.
    """
    check_invitee(find_by_token(token), user)
    # Org first, then the invitation: the same lock order as invite and revoke.
    org = lock_org(find_by_token(token).org_id)
    # Read again under the lock: a concurrent accept or revoke may have just finished.
    invitation = find_by_token(token, for_update=True)
    membership = fresh_membership(org.id, user.id)
    if membership is not None:
        raise Conflict(f"You are already a member of {org.name}.")
    check_inviter(invitation)
    membership = add_member(org, user, invitation.role)
    forget_departure(org.id, user.id)
    invitation.accepted_at = utcnow()
    invitation.accepted_by_id = user.id
    audit.record(org, user, "invitation.accepted", invitation.email, role=invitation.role)
    return membership
