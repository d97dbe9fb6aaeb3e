"""An org never loses its last owner, even when its two owners act against each other in the
same instant: demoting each other, stepping down, leaving or removing each other.

Each test races real threads many rounds over, on whichever database the run uses. After
every round exactly one owner is left, one request succeeded and the other got a 409 that
says why (never a 500, nor a 404 as if the org had vanished).
"""

import pytest

from app.extensions import db
from app.models import DepartedMember, Org
from tests.conftest import create_org_as
from tests.org_helpers import HX, Action, owner_count, race, role_of, user_id

ROUNDS = 10
ROLE_CHANGED = (
    "Your role in this organisation changed while you were making this change; "
    "reload the page and try again."
)
LAST_OWNER = "An organisation needs at least one owner."


@pytest.fixture
def owners(app, signed_in_client, grant_role):
    """Alice and Bob, each in their own browser, and a way to make them a new two-owner org."""
    alice = signed_in_client("alice")
    bob = signed_in_client("bob")
    made = []

    def new_org() -> str:
        """A fresh org whose only owners are alice and bob; its slug."""
        slug = create_org_as(alice, f"Duo {len(made) + 1}")
        grant_role(slug, "bob", "owner")
        made.append(slug)
        return slug

    ids = {"alice": user_id(app, "alice"), "bob": user_id(app, "bob")}
    return {"alice": alice, "bob": bob, "ids": ids, "new_org": new_org}


def outcome(responses, success: int) -> tuple[str, str]:
    """(winner, loser) of a race between alice's and bob's requests, in that order.

    Asserts one succeeded with `success` and the other got 409.
    """
    statuses = [response.status_code for response in responses]
    assert sorted(statuses) == sorted([success, 409]), statuses
    return ("alice", "bob") if statuses[0] == success else ("bob", "alice")


def departure_of(app, slug: str, sub: str) -> str | None:
    """Why `sub` is recorded as having left the org ('removed' or 'left'), or None."""
    with app.app_context():
        return db.session.execute(
            db.select(DepartedMember.reason)
            .join(Org, Org.id == DepartedMember.org_id)
            .filter(Org.slug == slug, DepartedMember.user_id == user_id(app, sub))
        ).scalar_one_or_none()


@pytest.mark.parametrize(("headers", "success"), [({}, 302), (HX, 200)], ids=["page", "htmx"])
def test_two_owners_demoting_each_other_at_once_leave_one_owner(app, owners, headers, success):
    for _ in range(ROUNDS):
        slug = owners["new_org"]()
        responses = race(
            Action(
                owners["alice"],
                f"/orgs/{slug}/members/{owners['ids']['bob']}/role",
                {"role": "admin"},
                headers=headers,
            ),
            Action(
                owners["bob"],
                f"/orgs/{slug}/members/{owners['ids']['alice']}/role",
                {"role": "admin"},
                headers=headers,
            ),
        )

        winner, loser = outcome(responses, success)
        refused = responses[0] if loser == "alice" else responses[1]
        assert ROLE_CHANGED in refused.get_data(as_text=True)
        assert owner_count(app, slug) == 1
        assert (role_of(app, slug, winner), role_of(app, slug, loser)) == ("owner", "admin")


@pytest.mark.parametrize(("headers", "success"), [({}, 302), (HX, 204)], ids=["page", "htmx"])
def test_last_two_owners_stepping_down_at_once_leave_one_owner(app, owners, headers, success):
    for _ in range(ROUNDS):
        slug = owners["new_org"]()
        responses = race(
            *(
                Action(
                    owners[sub],
                    f"/orgs/{slug}/members/{owners['ids'][sub]}/role",
                    {"role": "admin"},
                    headers=headers,
                )
                for sub in ("alice", "bob")
            )
        )

        winner, loser = outcome(responses, success)
        refused = responses[0] if loser == "alice" else responses[1]
        # The second one to get the lock is now the only owner, so may not step down.
        assert LAST_OWNER in refused.get_data(as_text=True)
        assert owner_count(app, slug) == 1
        assert (role_of(app, slug, winner), role_of(app, slug, loser)) == ("admin", "owner")


@pytest.mark.parametrize(("headers", "success"), [({}, 302), (HX, 204)], ids=["page", "htmx"])
def test_last_two_owners_leaving_at_once_leave_one_owner(app, owners, headers, success):
    for _ in range(ROUNDS):
        slug = owners["new_org"]()
        responses = race(
            *(
                Action(owners[sub], f"/orgs/{slug}/leave", headers=headers)
                for sub in ("alice", "bob")
            )
        )

        winner, loser = outcome(responses, success)
        refused = responses[0] if loser == "alice" else responses[1]
        assert LAST_OWNER in refused.get_data(as_text=True)
        assert owner_count(app, slug) == 1
        assert (role_of(app, slug, winner), role_of(app, slug, loser)) == (None, "owner")
        assert (departure_of(app, slug, winner), departure_of(app, slug, loser)) == ("left", None)


@pytest.mark.parametrize(
    ("method", "suffix", "headers", "success"),
    [("POST", "/remove", {}, 302), ("DELETE", "", HX, 200)],
    ids=["page", "htmx"],
)
def test_two_owners_removing_each_other_at_once_leave_one_owner(
    app, owners, method, suffix, headers, success
):
    for _ in range(ROUNDS):
        slug = owners["new_org"]()
        responses = race(
            Action(
                owners["alice"],
                f"/orgs/{slug}/members/{owners['ids']['bob']}{suffix}",
                method=method,
                headers=headers,
            ),
            Action(
                owners["bob"],
                f"/orgs/{slug}/members/{owners['ids']['alice']}{suffix}",
                method=method,
                headers=headers,
            ),
        )

        winner, loser = outcome(responses, success)
        refused = responses[0] if loser == "alice" else responses[1]
        assert ROLE_CHANGED in refused.get_data(as_text=True)
        assert owner_count(app, slug) == 1
        assert (role_of(app, slug, winner), role_of(app, slug, loser)) == ("owner", None)
        assert departure_of(app, slug, loser) == "removed"
