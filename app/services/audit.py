"""The audit log: who changed what in an org, when, and to whom.

Events are added to the session of the change they describe, so they are committed (or
rolled back) in the same transaction as that change.
"""

import json

from app.extensions import db
from app.models import AuditEvent, Membership, Org, User
from app.services.orgs import require_role

# Enough for a screenful of recent history; older events stay in the table.
AUDIT_PAGE_SIZE = 200


def record(org: Org, actor: User | None, action: str, target: str | None, **details) -> None:
    """Add an audit event for a change to `org` made by `actor`."""
    db.session.add(
        AuditEvent(
            org_id=org.id,
            actor_id=actor.id if actor else None,
            action=action,
            target=target,
            details=json.dumps(details, sort_keys=True) if details else None,
        )
    )


def recent_events(viewer: Membership) -> list[AuditEvent]:
    """The org's latest events, newest first; admins and owners only."""
    require_role(viewer, "admin")
    return list(
        db.session.execute(
            db.select(AuditEvent)
            .filter_by(org_id=viewer.org_id)
            .order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
            .limit(AUDIT_PAGE_SIZE)
        ).scalars()
    )


def describe(event: AuditEvent) -> str:
    """The event's details as a short readable text ("from member to admin")."""
    if not event.details:
        return ""
    details = json.loads(event.details)
    return ", ".join(
        f"{key.replace('_', ' ')}: {'(none)' if value is None else value}"
        for key, value in details.items()
    )
