"""Members of an org: listing them, changing roles, removing, leaving, and domain auto-join.

Each change locks the org row first (see `lock_org`) and re-reads the roles involved, so
the rule "an org always keeps at least one owner" holds under concurrent requests.
"""

from app.extensions import db
from app.models import ROLES, Membership, Org, User
from app.services import audit
from app.services.errors import Conflict, Forbidden, InvalidInput, NotFound
from app.services.orgs import (
    fresh_membership,
    has_role,
    lock_org,
    owner_count,
    require_role,
)

LAST_OWNER_MESSAGE = "An organisation needs at least one owner. Make someone else an owner first."


def list_members(viewer: Membership) -> list[Membership]:
    """The org's memberships with their users, owners first, then by name."""
    rank = db.case({"owner": 0, "admin": 1, "member": 2}, value=Membership.role)
    return list(
        db.session.execute(
            db.select(Membership)
            .join(Membership.user)
            .filter(Membership.org_id == viewer.org_id)
            .order_by(rank, db.func.lower(db.func.coalesce(User.name, User.email)), User.id)
        ).scalars()
    )


def can_manage(viewer: Membership, target: Membership) -> bool:
    """Tell whether the viewer may change the target's role or remove them."""
    if not has_role(viewer, "admin"):
        return False
    return target.role != "owner" or viewer.role == "owner"


def assignable_roles(viewer: Membership) -> tuple[str, ...]:
    """The roles the viewer may hand out: owners any, admins admin or member."""
    if viewer.role == "owner":
        return ROLES
    if viewer.role == "admin":
        return ("admin", "member")
    return ()


def _locked_pair(actor: Membership, user_id: int) -> tuple[Membership, Membership]:
    """Lock the org, then re-read the actor's and the target's memberships in it."""
    lock_org(actor.org_id)
    current_actor = fresh_membership(actor.org_id, actor.user_id)
    if current_actor is None:
        raise NotFound("No such organisation.")
    target = fresh_membership(actor.org_id, user_id)
    if target is None:
        raise NotFound("That person is not a member of this organisation.")
    return current_actor, target


def _require_not_last_owner(target: Membership) -> None:
    """Raise Conflict if the target is the org's only owner."""
    if target.role == "owner" and owner_count(target.org_id) <= 1:
        raise Conflict(LAST_OWNER_MESSAGE)


def clean_role(raw: str | None) -> str:
    """Validate a submitted role name."""
    role = (raw or "").strip().lower()
    if role not in ROLES:
        raise InvalidInput("Choose owner, admin or member.", field="role")
    return role


def change_role(actor: Membership, user_id: int, raw_role: str | None) -> Membership:
    """Give a member another role; only owners make or unmake owners."""
    role = clean_role(raw_role)
    actor, target = _locked_pair(actor, user_id)
    require_role(actor, "admin")
    if "owner" in (role, target.role) and actor.role != "owner":
        raise Forbidden("Only an owner can make or remove owners.")
    if role == target.role:
        return target
    if target.role == "owner":
        _require_not_last_owner(target)
    previous = target.role
    target.role = role
    audit.record(
        target.org,
        actor.user,
        "member.role_changed",
        _label(target.user),
        **{"from": previous, "to": role},
    )
    return target


def remove_member(actor: Membership, user_id: int) -> Membership:
    """Remove someone from the org; admins may remove members and admins, owners anyone."""
    actor, target = _locked_pair(actor, user_id)
    require_role(actor, "admin")
    if target.role == "owner" and actor.role != "owner":
        raise Forbidden("Only an owner can remove an owner.")
    _require_not_last_owner(target)
    audit.record(target.org, actor.user, "member.removed", _label(target.user), role=target.role)
    db.session.delete(target)
    return target


def leave_org(membership: Membership) -> None:
    """Leave the org; the last owner cannot."""
    lock_org(membership.org_id)
    current = fresh_membership(membership.org_id, membership.user_id)
    if current is None:
        raise NotFound("No such organisation.")
    _require_not_last_owner(current)
    audit.record(current.org, current.user, "member.left", _label(current.user), role=current.role)
    db.session.delete(current)


def add_member(org: Org, user: User, role: str) -> Membership:
    """Add the user to the (already locked) org with a role; the caller records why."""
    membership = Membership(org=org, user=user, role=role)
    db.session.add(membership)
    return membership


def email_domain(email: str | None) -> str | None:
    """The part after the @ of an email, lower-case; None if there is none."""
    if not email or email.count("@") != 1:
        return None
    return email.rsplit("@", 1)[1].lower() or None


def join_orgs_by_email_domain(user: User) -> list[Org]:
    """Add the user as a member to every org that allows their verified email's domain.

    Unverified emails never join: anyone can type any address into some providers.
    Only an exact domain match counts; a subdomain is another organisation's mail.
    """
    domain = email_domain(user.email)
    if not user.email_verified or domain is None:
        return []
    db.session.flush()
    already = db.select(Membership.org_id).filter_by(user_id=user.id)
    candidates = db.session.execute(
        db.select(Org.id).filter(Org.allowed_email_domain == domain, Org.id.not_in(already))
    ).scalars()
    joined = []
    for org_id in list(candidates):
        org = lock_org(org_id)
        # Re-check under the lock: the owner may have just changed the domain.
        if org.allowed_email_domain != domain or fresh_membership(org.id, user.id):
            continue
        add_member(org, user, "member")
        audit.record(org, user, "member.auto_joined", _label(user), domain=domain)
        joined.append(org)
    return joined


def _label(user: User) -> str:
    """How a user is named in the audit log: their email, else their display name."""
    return user.email or user.display_name
