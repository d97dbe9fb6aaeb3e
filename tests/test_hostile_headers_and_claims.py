"""Hostile input that does not come from a form: a malformed HX-Current-URL header, and ID
token claims no person would type. Never a 500, never a half-done change."""

import pytest

from app.extensions import db
from app.models import Link, User
from tests.link_helpers import create_link, link_row, mutate, post_link

BROKEN_CURRENT_URLS = ["http://[", "http://[::1", "https://[not-an-ip]/orgs/acme/links?q=x"]


@pytest.mark.parametrize("current_url", BROKEN_CURRENT_URLS)
def test_a_broken_current_url_header_still_creates_the_link_once(app, org_team, current_url):
    owner, acme = org_team["owner"], org_team["slug"]
    owner.environ_base["HTTP_HX_CURRENT_URL"] = current_url

    response = post_link(owner, acme, "https://example.com/fresh", htmx=True, slug="fresh")

    assert response.status_code == 201
    assert 'id="link-fresh"' in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.execute(db.select(db.func.count(Link.id))).scalar_one() == 1


@pytest.mark.parametrize("current_url", BROKEN_CURRENT_URLS)
def test_a_broken_current_url_header_still_deletes_the_link(app, org_team, current_url):
    owner, acme = org_team["owner"], org_team["slug"]
    create_link(owner, acme, "doomed")
    owner.environ_base["HTTP_HX_CURRENT_URL"] = current_url

    response = mutate(owner, "DELETE", f"/orgs/{acme}/links/doomed", acme)

    assert response.status_code == 200
    assert "HX-Redirect" not in response.headers
    assert link_row(app, "doomed").deleted_at is not None


def user_by_subject(app, subject: str) -> User | None:
    """The stored user with this provider subject, if any."""
    with app.app_context():
        return db.session.execute(
            db.select(User).filter_by(oidc_subject=subject)
        ).scalar_one_or_none()


def test_a_name_claim_with_invisible_characters_signs_in_cleaned(app, sign_in):
    response = sign_in("ada", name="Ada\x00 Love\u200blace\u202e\n", email="ada@example.com")

    assert response.status_code == 302
    assert user_by_subject(app, "ada").name == "Ada Lovelace"


@pytest.mark.parametrize(
    "email",
    [
        "a" * 310 + "@example.com",  # over 320 characters
        "ada\x00@example.com",
        "ada\u202e@example.com",
        "ada@exa mple.com",
    ],
)
def test_an_unusable_email_claim_is_dropped_and_never_verified(app, sign_in, email):
    response = sign_in("ada", email=email, email_verified=True)

    assert response.status_code == 302
    user = user_by_subject(app, "ada")
    assert (user.email, user.email_verified) == (None, False)


@pytest.mark.parametrize("subject", ["s" * 256, "ada\u202eevil", "ada\u200b"])
def test_an_unusable_subject_is_refused_and_nobody_is_created(app, sign_in, subject):
    response = sign_in(subject)

    assert response.status_code == 422
    assert "unusable user id" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.execute(db.select(db.func.count(User.id))).scalar_one() == 0
