"""Helpers for the org, member and invitation tests: look-ups, whole-database snapshots,
requests racing each other, and a record of the SQL a request sends."""

import contextlib
import re
import threading
from dataclasses import dataclass, field
from urllib.parse import quote

from flask.testing import FlaskClient
from sqlalchemy import event, select

from app.extensions import db
from app.models import Invitation, Membership, Org, User
from app.services import orgs as org_service
from tests.conftest import csrf_token, run_at_once

HX = {"HX-Request": "true"}


def user_id(app, sub: str) -> int:
    """The id of the user who signed in as `sub`."""
    with app.app_context():
        return db.session.execute(select(User.id).filter_by(oidc_subject=sub)).scalar_one()


def role_of(app, org_slug: str, sub: str) -> str | None:
    """The role `sub` holds in the org, or None if they are not a member."""
    with app.app_context():
        return db.session.execute(
            select(Membership.role)
            .join(Membership.org)
            .join(Membership.user)
            .filter(Org.slug == org_slug, User.oidc_subject == sub)
        ).scalar_one_or_none()


def owner_count(app, org_slug: str) -> int:
    with app.app_context():
        return db.session.execute(
            select(db.func.count(Membership.id))
            .join(Membership.org)
            .filter(Org.slug == org_slug, Membership.role == "owner")
        ).scalar_one()


def snapshot(app) -> dict[str, list[tuple]]:
    """Every row of every table, to show that a refused request changed nothing."""
    with app.app_context(), db.engine.connect() as connection:
        return {
            table.name: sorted(
                (tuple(str(value) for value in row) for row in connection.execute(table.select())),
            )
            for table in db.metadata.sorted_tables
        }


def post_form(client, path: str, data: dict | None = None, headers: dict | None = None):
    """POST a form with this client's CSRF token, as the page's form would."""
    token = csrf_token(client)
    return client.post(path, data={**(data or {}), "csrf_token": token}, headers=headers)


def save_settings(client, name="Acme", domain="", headers=None, org_slug="acme"):
    """Save the org's settings form with a name and an auto-join domain."""
    return post_form(
        client,
        f"/orgs/{org_slug}/settings",
        {"name": name, "allowed_email_domain": domain},
        headers,
    )


def org_row(app, slug="acme") -> Org | None:
    """The org with this slug as stored, or None."""
    with app.app_context():
        return db.session.execute(db.select(Org).filter_by(slug=slug)).scalar_one_or_none()


def invite(client, email: str, role: str = "member", headers: dict | None = None):
    """Invite `email` to acme with `role`, as the members page's form does."""
    return post_form(client, "/orgs/acme/invitations", {"email": email, "role": role}, headers)


def invite_link(response) -> str:
    """The invitation link as the page shows it to the inviter."""
    match = re.search(r'data-testid="invite-link" value="([^"]+)"', response.get_data(as_text=True))
    assert match, "the response shows no invitation link"
    return match.group(1)


def pending_invitation(app, client, email: str = "pending@example.com") -> tuple[int, str]:
    """Invite `email` to acme as a member; return the invitation's id and its token."""
    link = invite_link(invite(client, email))
    with app.app_context():
        invitation_id = db.session.execute(
            select(Invitation.id).filter_by(email=email)
        ).scalar_one()
    return invitation_id, link.rsplit("/", 1)[1]


def delete(client, path: str, headers: dict | None = None):
    """DELETE as htmx does: no form fields, the CSRF token in the X-CSRFToken header."""
    return client.delete(path, headers={**(headers or {}), "X-CSRFToken": csrf_token(client)})


@dataclass(frozen=True)
class Action:
    """One person's request in a race: their browser, the path, the form and how it is sent."""

    browser: FlaskClient
    path: str
    form: dict = field(default_factory=dict)
    method: str = "POST"
    headers: dict = field(default_factory=dict)


def race(*actions: Action, timeout: float = 10):
    """Send the requests at once, each in its own thread; their responses, in order.

    No request goes further than reading its sender's membership (`membership_for`) until
    all of them have read theirs, as when people click in the same instant: each acts on
    the roles as they were before any of the others' changes. Without that, one request
    often finishes before the other has even started, and no race is tested.
    """
    tokens = [csrf_token(action.browser) for action in actions]
    everyone_has_read = threading.Barrier(len(actions), timeout=timeout)
    membership_for = org_service.membership_for

    def read_then_wait(user, org_slug):
        """Read the membership as the app does, then wait for the other requests to."""
        try:
            membership = membership_for(user, org_slug)
        except BaseException:
            # Whoever is waiting should fail now, not at the timeout.
            everyone_has_read.abort()
            raise
        everyone_has_read.wait()
        return membership

    def sender(action: Action, token: str):
        """A call that sends the action as its page would: the CSRF token as field or header."""
        if action.method == "DELETE":
            headers, data = {**action.headers, "X-CSRFToken": token}, None
        else:
            headers, data = action.headers, {**action.form, "csrf_token": token}
        return lambda: action.browser.open(
            action.path, method=action.method, data=data, headers=headers
        )

    org_service.membership_for = read_then_wait
    try:
        return run_at_once(
            *(sender(action, token) for action, token in zip(actions, tokens, strict=True)),
            timeout=timeout * 3,
        )
    finally:
        org_service.membership_for = membership_for


def routes(app, prefix: str = "") -> list[tuple[str, str, str]]:
    """(method, rule, endpoint) of every route whose rule starts with `prefix`, sorted."""
    return sorted(
        (method, rule.rule, rule.endpoint)
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith(prefix)
        for method in rule.methods - {"HEAD", "OPTIONS"}
    )


def _placeholders(rule: str) -> list[tuple[str, str]]:
    """Each `<converter(args):name>` of a rule as (what stands between < and >, name)."""
    inside = [part.split(">", 1)[0] for part in rule.split("<")[1:]]
    return [(placeholder, placeholder.rsplit(":", 1)[-1]) for placeholder in inside]


def fill_rule(rule: str, params: dict[str, str]) -> str:
    """The path of a url_map rule with each <converter:name> replaced by its quoted value."""
    path = rule
    for placeholder, name in _placeholders(rule):
        path = path.replace(f"<{placeholder}>", quote(str(params[name]), safe=""))
    return path


def simple_rule(rule: str) -> str:
    """`rule` without converters: `<int(max=...):user_id>` becomes `<user_id>`."""
    for placeholder, name in _placeholders(rule):
        rule = rule.replace(f"<{placeholder}>", f"<{name}>")
    return rule


def rule_arguments(rule: str) -> list[str]:
    """The names of a rule's path parameters, in order."""
    return [name for _, name in _placeholders(rule)]


@dataclass(frozen=True)
class SentStatement:
    """One SQL statement sent to the database, and its parameters as text."""

    sql: str
    parameters: str

    @property
    def writes(self) -> bool:
        """Tell whether the statement changes rows."""
        return self.sql.lstrip().split(None, 1)[0].upper() in {"INSERT", "UPDATE", "DELETE"}


@contextlib.contextmanager
def recorded_sql(app):
    """Collect every statement the app's engine sends inside the block."""
    sent: list[SentStatement] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        sent.append(SentStatement(statement, repr(parameters)))

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", record)
