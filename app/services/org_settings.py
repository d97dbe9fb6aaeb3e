"""Org settings: rename, the auto-join email domain, and deleting the org (owners only)."""

import re

from app.extensions import db
from app.models import Link, Membership, RetiredSlug, UTCDateTime, utcnow
from app.services import audit
from app.services.errors import InvalidInput
from app.services.orgs import clean_org_name, lock_org, require_role

_DOMAIN_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
MAX_DOMAIN_LENGTH = 253


def clean_email_domain(raw: str | None) -> str | None:
    """Validate an email domain ("acme.com", an optional leading @ is dropped); blank -> None.

    ASCII only: an internationalised domain is entered in its xn-- form, which is also
    how providers put it in the email claim.
    """
    domain = (raw or "").strip().lower().removeprefix("@")
    if not domain:
        return None
    labels = domain.split(".")
    if (
        len(domain) > MAX_DOMAIN_LENGTH
        or len(labels) < 2
        or not all(_DOMAIN_LABEL.match(label) for label in labels)
        or labels[-1].isdigit()
    ):
        raise InvalidInput(
            "Enter a domain like acme.com, without @ or spaces.", field="allowed_email_domain"
        )
    return domain


def update_settings(actor: Membership, raw_name: str | None, raw_domain: str | None) -> list[str]:
    """Rename the org and set its auto-join domain; return what changed. Owners only.

    The slug stays as it is: bookmarks and shared links to the org keep working.
    """
    require_role(actor, "owner")
    name = clean_org_name(raw_name)
    domain = clean_email_domain(raw_domain)
    org = lock_org(actor.org_id)
    changed = []
    if name != org.name:
        audit.record(org, actor.user, "org.renamed", name, **{"from": org.name, "to": name})
        org.name = name
        changed.append("name")
    if domain != org.allowed_email_domain:
        audit.record(
            org,
            actor.user,
            "org.email_domain_changed",
            domain or "(none)",
            **{"from": org.allowed_email_domain, "to": domain},
        )
        org.allowed_email_domain = domain
        changed.append("allowed_email_domain")
    return changed


def delete_org(actor: Membership, confirmation: str | None) -> str:
    """Delete the org with everything in it, once its exact name is typed; owners only.

    Returns the deleted org's name. The audit event survives the org (its org_id becomes
    NULL) so operators can still see who deleted what.
    """
    require_role(actor, "owner")
    org = lock_org(actor.org_id)
    if (confirmation or "").strip() != org.name:
        raise InvalidInput(
            f"Type the organisation's name exactly ({org.name}) to delete it.",
            field="confirm_name",
        )
    name = org.name
    audit.record(org, actor.user, "org.deleted", name, slug=org.slug)
    # Links go with the org (ON DELETE CASCADE), but their slugs stay retired: printed
    # copies of them must never lead to whoever registers the slug next.
    db.session.execute(
        db.insert(RetiredSlug).from_select(
            ["slug", "retired_at"],
            db.select(Link.slug, db.literal(utcnow(), UTCDateTime)).filter(Link.org_id == org.id),
        )
    )
    # Memberships and invitations go with it too (ON DELETE CASCADE in the database).
    db.session.delete(org)
    return name
