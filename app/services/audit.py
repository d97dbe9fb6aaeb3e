"""The audit log: who changed what in an org, when, and to whom.

Events are added to the session of the change they describe, so they are committed (or
rolled back) in the same transaction as that change.
"""

import json

from app.extensions import db
from app.models import AuditEvent, Org, User


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
