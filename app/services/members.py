"""Members of an org: listing them, changing roles, removing, leaving, and domain auto-join.

Each change locks the org row first (see `lock_org`) and re-reads the roles involved, so
the rule "an org always keeps at least one owner" holds under concurrent requests.
"""

from app.extensions import db
from app.models import ROLES, DepartedMember, Membership, Org, User, utcnow
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
# Two requests raced (two owners demoting or removing each other) and the other one won.
ROLE_CHANGED_MESSAGE = (
    "Your role in this organisation changed while you were making this change; "
    "reload the page and try again."
)
NO_LONGER_A_MEMBER_MESSAGE = (
    "You are no longer a member of this organisation: your membership ended while you were "
    "leaving it."
)


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
    """Lock the org, then re-read the actor's and the target's memberships in it.

    Raises Conflict when the actor's membership is gone or their role is not the one the
    request started with: a concurrent change won, and what the actor saw and chose to do
    is out of date.
    """
    # Taken before the re-read, which refreshes this very object in place.
    org_id, actor_id, role_seen = actor.org_id, actor.user_id, actor.role
    lock_org(org_id)
    current_actor = fresh_membership(org_id, actor_id)
    if current_actor is None or current_actor.role != role_seen:
        raise Conflict(ROLE_CHANGED_MESSAGE)
    target = fresh_membership(org_id, user_id)
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
    _record_departure(target, "removed")
    db.session.delete(target)
    return target


def leave_org(membership: Membership) -> None:
    """Leave the org; the last owner cannot.

    A role changed meanwhile does not stop anyone leaving: the last-owner rule is checked
    on the roles as they are now, under the lock.
    """
    org_id, user_id = membership.org_id, membership.user_id
    lock_org(org_id)
    current = fresh_membership(org_id, user_id)
    if current is None:
        raise Conflict(NO_LONGER_A_MEMBER_MESSAGE)
    _require_not_last_owner(current)
    audit.record(current.org, current.user, "member.left", _label(current.user), role=current.role)
    _record_departure(current, "left")
    db.session.delete(current)


def _record_departure(membership: Membership, reason: str) -> None:
    """Remember that the member was removed or left, so auto-join never adds them back.

    Runs under the org lock, as does everything else that writes these records, so
    reading first and then inserting cannot race.
    """
    departed = db.session.execute(
        db.select(DepartedMember).filter_by(org_id=membership.org_id, user_id=membership.user_id)
    ).scalar_one_or_none()
    if departed is None:
        db.session.add(
            DepartedMember(org_id=membership.org_id, user_id=membership.user_id, reason=reason)
        )
    else:
        departed.reason = reason
        departed.departed_at = utcnow()


def has_departed(org_id: int, user_id: int) -> bool:
    """Tell whether the user was removed from the org or left it (and was not invited back)."""
    return (
        db.session.execute(
            db.select(DepartedMember.id).filter_by(org_id=org_id, user_id=user_id)
        ).first()
        is not None
    )


def forget_departure(org_id: int, user_id: int) -> None:
    """Drop the record that the user left or was removed: they were invited back."""
    db.session.execute(
        db.delete(DepartedMember)
        .filter_by(org_id=org_id, user_id=user_id)
        .execution_options(synchronize_session=False)
    )


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
    Someone who was removed or left is never added back this way; an invitation can.
    """
    domain = email_domain(user.email)
    if not user.email_verified or domain is None:
        return []
    db.session.flush()
    already = db.select(Membership.org_id).filter_by(user_id=user.id)
    departed = db.select(DepartedMember.org_id).filter_by(user_id=user.id)
    candidates = db.session.execute(
        db.select(Org.id).filter(
            Org.allowed_email_domain == domain, Org.id.not_in(already), Org.id.not_in(departed)
        )
    ).scalars()
    joined = []
    for org_id in list(candidates):
        org = lock_org(org_id)
        # Re-check under the lock: the owner may have just changed the domain or removed them.
        if (
            org.allowed_email_domain != domain
            or fresh_membership(org.id, user.id)
            or has_departed(org.id, user.id)
        ):
            continue
        add_member(org, user, "member")
        audit.record(org, user, "member.auto_joined", _label(user), domain=domain)
        joined.append(org)
    return joined


def _label(user: User) -> str:
    """How a user is named in the audit log: their email, else their display name."""
    return user.email or user.display_name
